"""The lean job record: a job hash stores no field at its default, and every reader (the Lua
scripts, ``Job.info``, ``result()``) takes a missing field as its default; a done-list exists
only for a job somebody waits for (docs/protocol.md, bench/README.md "Where a job's bytes go").
"""

from __future__ import annotations

import json
import threading
from typing import Any

import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker


def test_a_default_job_stores_only_what_differs_from_the_defaults(
    app: kubeq.App, r: redis.Redis
) -> None:
    job = app.queue("lean").enqueue(qtasks.add)
    stored = r.hgetall(QueueKeys.of("lean").job(job.id))
    # (and "sent": a one-job call keeps its send token on its job, for its resend)
    assert sorted(stored) == [b"enqueued_at", b"payload", b"result_ttl", b"sent", b"status"]
    assert json.loads(stored[b"payload"]) == {"task": "qtasks.add"}
    assert r.object("encoding", QueueKeys.of("lean").job(job.id)) == b"listpack"
    info = job.info()
    assert (info.priority, info.attempts, info.deliveries) == (5, 0, 0)
    assert (info.status, info.task) == ("queued", "qtasks.add")


def test_options_that_differ_from_the_defaults_are_stored(app: kubeq.App, r: redis.Redis) -> None:
    job = app.queue("lean").enqueue_call(qtasks.add, (1,), {"y": 2}, priority=9, max_deliveries=2)
    stored = r.hgetall(QueueKeys.of("lean").job(job.id))
    assert (stored[b"priority"], stored[b"max_deliveries"]) == (b"9", b"2")
    payload = json.loads(stored[b"payload"])
    assert (payload["args"], payload["kwargs"]) == ([1], {"y": 2})
    assert job.info().priority == 9


def _fetch(app: kubeq.App, worker: str) -> list[Any]:
    keys = QueueKeys.of("lean")
    args = [worker, 1, 60_000, 0, 60_000, 1, keys.base, "0", ""]
    return list(app.scripts.fetch(keys=keys.script_keys, args=args))


def test_a_job_without_max_deliveries_is_buried_after_the_default_five_lost(
    app: kubeq.App, r: redis.Redis
) -> None:
    """No max_deliveries field: the fetch that finds its lease expired counts the lost
    deliveries against the default, 5 (not 1)."""
    keys = QueueKeys.of("lean")
    job = app.queue("lean").enqueue(qtasks.add, 1, 1)
    for n in range(1, 6):
        got = _fetch(app, f"w{n}")
        assert got[3] == job.id.encode(), f"delivery {n}: {got}"
        r.zadd(keys.active, {job.id: 0})  # its worker died: the lease runs out
    _fetch(app, "w6")
    info = job.info()
    assert info.status == "failed", info
    assert "delivered 5 times without an acknowledgement" in info.reason


def test_a_job_nobody_waits_for_leaves_no_done_list(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    start_worker("--queue", "lean")
    job = app.queue("lean").enqueue(qtasks.add, 2, 3)
    wait_until(lambda: job.status() == "finished", 60, "the job to finish")
    assert not r.exists(QueueKeys.of("lean").done(job.id))
    assert job.result(timeout=10) == 5


def test_a_waiter_that_blocks_before_the_end_is_woken_by_it(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """result() watches the job, then blocks on its done-list: the end (here long after the
    wait began) pushes it, for that waiter and any other."""
    keys = QueueKeys.of("lean")
    job = app.queue("lean").enqueue(qtasks.add, 20, 22)
    got: list[Any] = []
    waiters = [threading.Thread(target=lambda: got.append(job.result(timeout=120))) for _ in "ab"]
    for t in waiters:
        t.start()
    wait_until(lambda: r.exists(keys.watch(job.id)), 30, "the waiters to watch the job")
    start_worker("--queue", "lean")
    for t in waiters:
        t.join(150)
    assert got == [42, 42]
    assert r.llen(keys.done(job.id)) == 1
    assert 0 < r.ttl(keys.done(job.id)) <= 86_400
