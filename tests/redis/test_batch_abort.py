"""Aborting one item of a batch with real workers: while its batch forms, the item leaves it;
while its batch runs, the item ends aborted at once, the run goes on, the task can see it
(``current_job().aborted_items()``), its answer for the item is not recorded, and a rerun of
the batch after a SIGKILL skips it."""

from __future__ import annotations

import json
import signal

import pytest
import qtasks
import redis

import kubeq
from kubeq.errors import JobAborted
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker

T = qtasks.app.tasks
KEYS = QueueKeys.of("default")


def held(app: kubeq.App, values: list[int]) -> list[kubeq.Job]:
    return app.enqueue_many([T["flowtasks.held_batch"].s(v) for v in values])


def test_abort_an_item_while_its_batch_runs(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    jobs = held(app, [1, 2, 3])
    start_worker()
    wait_until(lambda: r.llen("flowtest:held-runs") == 1, what="the batch runs")
    assert jobs[1].abort() is True
    assert jobs[1].status() == "aborted"  # at once, while the batch runs on
    with pytest.raises(JobAborted):
        jobs[1].result(timeout=5)
    r.set("flowtest:go", 1)
    assert jobs[0].result(timeout=60) == 10 and jobs[2].result(timeout=60) == 30
    assert [json.loads(a) for a in r.lrange("flowtest:held-aborted", 0, -1)] == [[1]]
    assert jobs[1].status() == "aborted"
    assert r.hget(KEYS.job(jobs[1].id), "result") is None  # its answer (20) not recorded
    assert (
        r.hget(KEYS.job(jobs[1].id), "reason")
        .decode()
        .startswith("aborted by request while its batch")
    )
    assert jobs[1].abort() is False  # it has ended


def test_abort_an_item_while_its_batch_forms(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    r.set("flowtest:go", 1)
    jobs = held(app, [1, 2])  # the batch waits for a third item or 0.3 s
    assert jobs[0].abort() is True
    carrier = jobs[1].info().batch
    assert r.hget(KEYS.job(carrier), "batch_size") == b"1"
    start_worker()
    assert jobs[1].result(timeout=60) == 20
    assert jobs[0].status() == "aborted"
    assert [json.loads(b) for b in r.lrange("flowtest:held-runs", 0, -1)] == [[2]]


def test_a_batch_rerun_after_a_sigkill_skips_its_aborted_item(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    r.set("flowtest:kill-first", 1)
    jobs = held(app, [1, 2, 3])
    doomed = start_worker("--lease", "2", "--concurrency", "1", "--prefetch-ms", "0")
    wait_until(lambda: r.llen("flowtest:held-runs") == 1, what="the batch runs")
    assert jobs[0].abort() is True
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    r.set("flowtest:go", 1)
    start_worker("--lease", "2")
    assert jobs[1].result(timeout=90) == 20 and jobs[2].result(timeout=90) == 30
    runs = [json.loads(b) for b in r.lrange("flowtest:held-runs", 0, -1)]
    assert runs == [[1, 2, 3], [2, 3]]  # the rerun, without the aborted item
    assert jobs[0].status() == "aborted"
