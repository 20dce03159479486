"""Batches with real workers: formed in Redis by size and by wait, per key; each item keeps
its own job, result and dead letter; a SIGKILL mid-batch re-runs that batch's items only."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
import qtasks
import redis

import kubeq
from kubeq.errors import JobFailed
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker, run

T = qtasks.app.tasks
KEYS = QueueKeys.of("default")


def items(app: kubeq.App, name: str, values: list[Any]) -> list[kubeq.Job]:
    return [app.enqueue_many([T[f"flowtasks.{name}"].s(v)])[0] for v in values]


def test_full_batches_run_at_max_size_and_the_rest_after_max_wait(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    jobs = items(app, "insert_events", list(range(25)))
    assert len({j.id for j in jobs}) == 25 and all(j.created for j in jobs)
    assert {j.status() for j in jobs} == {"batched"}
    assert r.zcard(KEYS.ready) == 2  # two full batches, ready at once
    start_worker()
    assert [j.result(timeout=60) for j in jobs] == [v * 10 for v in range(25)]
    batches = [json.loads(b) for b in r.lrange("flowtest:batches", 0, -1)]
    assert sorted(len(b) for b in batches) == [5, 10, 10]
    assert sorted(v for b in batches for v in b) == list(range(25))
    carrier = jobs[0].info().batch
    report = json.loads(r.hget(KEYS.job(carrier), "result"))
    assert (report["items"], report["failed"]) == (10, 0) and report["waited_ms"] >= 0
    out = run(redis_url, "job", "show", jobs[0].id).stdout
    assert f"batch: {carrier} (the batch job it runs in)" in out, out


def test_a_batch_per_key(app: kubeq.App, redis_url: str, start_worker: StartWorker) -> None:
    r = redis.Redis.from_url(redis_url)
    jobs = items(app, "per_tenant", [{"tenant": t, "n": i} for i in range(6) for t in "abc"])
    start_worker()
    for j in jobs:
        j.result(timeout=60)
    got = sorted(json.loads(b) for b in r.lrange("flowtest:tenant-batches", 0, -1))
    assert got == [["a"], ["b"], ["c"]]


def test_a_failed_item_goes_to_the_dead_letters_with_its_reason(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    jobs = items(app, "odd_fails", [0, 1, 2, 3])
    start_worker()
    assert jobs[0].result(timeout=60) == 0 and jobs[2].result(timeout=60) == 2
    for j in (jobs[1], jobs[3]):
        with pytest.raises(JobFailed):
            j.result(timeout=60)
    dead = {d.id: d for d in app.queue("default").dead_letters()}
    assert set(dead) == {jobs[1].id, jobs[3].id}
    assert (
        dead[jobs[1].id].reason
        == "failed in its batch: failed 1 of 1 attempts: ValueError: 1 is odd"
    )


def test_a_batch_that_raises_dead_letters_every_item(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    jobs = items(app, "batch_raises", [1, 2, 3])
    start_worker()
    for j in jobs:
        with pytest.raises(JobFailed, match="whole batch of 3 failed"):
            j.result(timeout=60)
    assert set(app.queue("default").dead_letter_ids()) >= {j.id for j in jobs}


def test_a_sigkill_mid_batch_reruns_that_batch_and_no_other(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    jobs = items(app, "slow_batch", list(range(15)))  # three full batches
    doomed = start_worker("--lease", "2", "--concurrency", "1", "--prefetch-ms", "0")
    wait_until(lambda: r.exists("flowtest:slow-first"), what="the first batch runs")
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    start_worker("--lease", "2")
    assert [j.result(timeout=90) for j in jobs] == list(range(15))
    runs = [json.loads(b) for b in r.lrange("flowtest:slow-runs", 0, -1)]
    first = runs[0]
    assert runs.count(first) == 2, runs  # the killed batch ran again, whole
    others = [b for b in runs if b != first]
    assert sorted(v for b in others for v in b) == sorted(set(range(15)) - set(first))


def test_bad_batch_options_name_the_field(app: kubeq.App) -> None:
    with pytest.raises(ValueError, match="Batch max_size must be a whole number"):
        kubeq.Batch(max_size=0, max_wait=1)
    with pytest.raises(ValueError, match="Batch max_wait must be > 0"):
        kubeq.Batch(max_size=5, max_wait=-1)
    with pytest.raises(ValueError, match="call it with one item"):
        app.enqueue_many([T["flowtasks.insert_events"].s(1, 2)])


def test_a_batch_purged_cancelled_or_aborted_ends_its_items(app: kubeq.App, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    purged = items(app, "insert_events", [1, 2])
    assert app.queue("default").purge() == 1  # the batch (its items are not in the sets)
    assert {j.status() for j in purged} == {"cancelled"}
    assert r.keys(KEYS.base + "batch:*") == []  # the open batch is closed
    assert all(r.ttl(k) > 0 for k in r.keys(KEYS.base + "items:*"))  # expires with its batch
    for end in ("cancel", "abort"):
        jobs = items(app, "insert_events", [3, 4])
        carrier = app.job(r.hget(KEYS.job(jobs[0].id), "batch").decode())
        assert getattr(carrier, end)()
        statuses = {j.status() for j in jobs}
        assert statuses == {"cancelled" if end == "cancel" else "aborted"}
        reason = r.hget(KEYS.job(jobs[0].id), "reason")
        assert reason is not None and carrier.id.encode() in reason
        assert r.keys(KEYS.base + "batch:*") == []
    fresh = items(app, "insert_events", [5])
    assert fresh[0].status() == "batched"


def test_a_failed_item_is_retried_on_its_own(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    jobs = items(app, "items_retry", list(range(6)))
    start_worker()
    assert [j.result(timeout=60) for j in jobs] == list(range(6))
    runs = [json.loads(b) for b in r.lrange("flowtest:retry-batches", 0, -1)]
    assert runs[0] == list(range(6)) and sorted(runs[1:]) == [[1], [3], [5]]
    assert [j.info().attempts for j in jobs] == [1, 2, 1, 2, 1, 2]


def test_3000_items_in_batches_of_500(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    """One bulk enqueue of 3,000 items: six full batches, every item processed once."""
    r = redis.Redis.from_url(redis_url)
    task = T["flowtasks.big_batches"]
    jobs = app.enqueue_many([task.s(i) for i in range(3000)])
    assert r.zcard(KEYS.ready) == 6
    start_worker("--concurrency", "2")
    start_worker("--concurrency", "2")
    assert [j.result(timeout=120) for j in jobs] == list(range(3000))
    sizes = sorted(int(s) for s in r.lrange("flowtest:big-sizes", 0, -1))
    assert sizes == [500] * 6
    last = r.hget(KEYS.job(jobs[-1].info().batch), "result")
    assert json.loads(last)["items"] == 500


def test_a_malformed_item_is_dead_lettered_and_its_batch_runs(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    jobs = items(app, "insert_events", [1, 2, 3])
    r.hset(KEYS.job(jobs[1].id), "payload", "not json")  # written by hand
    start_worker()
    assert jobs[0].result(timeout=60) == 10 and jobs[2].result(timeout=60) == 30
    with pytest.raises(JobFailed, match="malformed payload"):
        jobs[1].result(timeout=60)
    assert jobs[1].id in app.queue("default").dead_letter_ids()
