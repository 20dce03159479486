"""Singleton keys with real workers: each mode's promise under concurrent callers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import qtasks
import redis

import kubeq
from kubeq.errors import JobAborted
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import max_running, wait_until
from tests.redis.workers import StartWorker

T = qtasks.app.tasks
KEYS = QueueKeys.of("default")


def call(app: kubeq.App, name: str, *args: Any, **options: Any) -> kubeq.Job:
    return app.enqueue_many([T[f"flowtasks.{name}"].s(*args).set(**options)])[0]


def many(app: kubeq.App, name: str, calls: list[tuple[Any, ...]]) -> list[kubeq.Job]:
    """The calls made by 50 threads at once, each its own enqueue."""
    with ThreadPoolExecutor(50) as pool:
        return list(pool.map(lambda a: call(app, name, *a), calls))


def test_skip_returns_the_job_that_waits_or_runs(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    waiting = many(app, "sync_skip", [("acct-1", 1.0, f"t{i}") for i in range(50)])
    assert len({j.id for j in waiting}) == 1 and sum(bool(j.created) for j in waiting) == 1
    first = next(j for j in waiting if j.created)
    start_worker()
    wait_until(lambda: first.status() == "active", what="the first call runs")
    running = many(app, "sync_skip", [("acct-1", 0.0, f"u{i}") for i in range(50)])
    assert {j.id for j in running} == {first.id} and not any(j.created for j in running)
    tag = first.result(timeout=60)
    assert r.lrange("flowtest:runs:acct-1", 0, -1) == [tag.encode()]
    after = call(app, "sync_skip", "acct-1", 0.0, "later")
    assert after.created and after.result(timeout=60) == "later"


def test_replace_runs_the_newest_waiting_call(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    jobs = [call(app, "sync_replace", "acct-2", f"t{i}") for i in range(50)]
    assert len({j.id for j in jobs}) == 1
    start_worker()
    assert {j.result(timeout=60) for j in jobs} == {"t49"}
    assert r.lrange("flowtest:runs:acct-2", 0, -1) == [b"t49"]


def test_keep_latest_runs_one_at_a_time_and_keeps_only_the_newest_waiting(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    start_worker("--concurrency", "8")
    running = call(app, "sync_latest", "acct-3", 1.5, "first")
    wait_until(lambda: running.status() == "active", what="the first call runs")
    behind = many(app, "sync_latest", [("acct-3", 0.1, f"t{i}") for i in range(50)])
    assert len({j.id for j in behind}) == 1 and behind[0].id != running.id
    assert sum(bool(j.created) for j in behind) == 1
    assert running.result(timeout=60) == "first"
    last = behind[0].result(timeout=60)
    assert all(j.result(timeout=60) == last for j in behind)
    spans = r.lrange("flowtest:spans:acct-3", 0, -1)
    assert len(spans) == 4, spans  # two runs: the first and the newest that waited
    assert max_running(spans) == 1


def test_cancel_running_aborts_the_run_and_starts_the_new_call_after_it_stopped(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    start_worker()
    old = call(app, "sync_cancel", "acct-4", 60.0, "old")
    wait_until(lambda: r.llen("flowtest:runs:acct-4") == 1, what="the first call runs")
    new = call(app, "sync_cancel", "acct-4", 0.1, "new")
    assert new.created and new.id != old.id
    with pytest.raises(JobAborted):
        old.result(timeout=60)
    assert new.result(timeout=60) == "new"
    assert r.lrange("flowtest:runs:acct-4", 0, -1) == [b"start old", b"start new", b"end new"]
    reason = r.hget(KEYS.job(old.id), "reason")
    assert reason is not None and b"cancel_running" in reason and new.id.encode() in reason


def test_kubeq_job_shows_the_key_and_the_calls_that_joined(app: kubeq.App, redis_url: str) -> None:
    from tests.redis.workers import run

    jobs = [call(app, "sync_replace", "acct-5", f"t{i}") for i in range(3)]
    out = run(redis_url, "job", "show", jobs[0].id)
    assert "flow: replace key flowtasks.sync_replace:acct-5, 2 later call(s) joined it" in (
        out.stdout
    ), out.stdout + out.stderr
    info = jobs[0].info()
    assert (info.flow_mode, info.flow_joined) == ("replace", 2)


def test_keep_latest_holds_under_50_callers_and_a_sigkilled_worker(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    import signal

    r = redis.Redis.from_url(redis_url)
    doomed = start_worker("--lease", "2", "--concurrency", "4")
    running = call(app, "sync_latest", "acct-6", 2.0, "first")
    wait_until(lambda: r.llen("flowtest:spans:acct-6") == 1, what="the first call runs")
    behind = many(app, "sync_latest", [("acct-6", 0.1, f"t{i}") for i in range(50)])
    assert len({j.id for j in behind}) == 1 and behind[0].id != running.id
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    start_worker("--lease", "2", "--concurrency", "4")
    assert running.result(timeout=90) == "first"
    last = behind[0].result(timeout=90)
    assert {j.result(timeout=5) for j in behind} == {last}
    spans = [s.decode().split() for s in r.lrange("flowtest:spans:acct-6", 0, -1)]
    # the killed run started and never ended; the run again after its lease, then the newest
    assert [(k, tag) for k, _, tag in spans] == [
        ("s", "first"),
        ("s", "first"),
        ("e", "first"),
        ("s", last),
        ("e", last),
    ]
    assert int(spans[3][1]) >= int(spans[2][1])  # the waiting call started after it ended
