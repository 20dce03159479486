"""Callbacks with real worker processes: ``on_success`` receives the result,
``on_failure`` the job's id and error after its last attempt only; per task and per call;
across queues; the hand-off is idempotent and survives the loss of the worker that ended the
parent (the sweep redoes it); bad callbacks are refused in the caller with nothing enqueued.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import pytest
import qtasks
import redis
import redis.asyncio

import kubeq
from kubeq import defaults
from kubeq.options import TaskOptions
from kubeq.store.keys import QueueKeys
from kubeq.worker.handoff import hand_off
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker


def _records(r: redis.Redis, tag: str) -> list[Any]:
    return [json.loads(v) for v in r.lrange(f"test:cb:{tag}", 0, -1)]


def test_on_success_receives_the_result_once(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, redis_url: str
) -> None:
    start_worker()
    job = app.queue().enqueue_call(qtasks.add, (20, 22), on_success=qtasks.record_result.s("ok"))
    assert job.result(timeout=30) == 42
    wait_until(lambda: _records(r, "ok"), what="the callback to run")
    assert _records(r, "ok") == [[f"{job.id}.s", 42]]
    callback = app.job(f"{job.id}.s")
    assert callback.result(timeout=30) is None and callback.status() == "finished"
    # the hand-off is idempotent: redoing it (a worker died before forgetting it) does not
    # run the callback again, even though the callback has already ended
    keys = QueueKeys.of("default")

    async def again() -> int:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            return await hand_off(client, keys, [job.id], lambda _n: TaskOptions())
        finally:
            await client.aclose()

    assert asyncio.run(again()) == 1
    time.sleep(1)
    assert _records(r, "ok") == [[f"{job.id}.s", 42]]
    assert r.zcard(keys.handoff) == 0


def test_on_failure_runs_after_the_last_attempt_only(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    start_worker()
    job = app.queue().enqueue_call(
        qtasks.always_fails, ("bad",), on_failure=qtasks.record_failure.s("bad")
    )
    with pytest.raises(kubeq.JobFailed):
        job.result(timeout=30)
    wait_until(lambda: _records(r, "bad"), what="the failure callback")
    assert r.lrange("test:attempts:bad", 0, -1) == [b"1", b"2"]
    ((cb_id, parent, error),) = _records(r, "bad")
    assert (cb_id, parent) == (f"{job.id}.f", job.id)
    assert "bad fails on purpose" in error
    assert app.job(f"{job.id}.s").status() == "unknown"  # no success callback: none was set


def test_per_task_callbacks_and_immutable_signatures(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    start_worker()
    ok = app.queue().enqueue(qtasks.with_callbacks, 5)
    bad = app.queue().enqueue(qtasks.with_callbacks, -1)
    frozen = app.queue().enqueue_call(
        qtasks.add, (1, 1), on_success=qtasks.record_args.si("frozen", 7)
    )
    assert ok.result(timeout=30) == 10
    wait_until(lambda: len(_records(r, "per-task")) == 2, what="both per-task callbacks")
    wait_until(lambda: _records(r, "frozen"), what="the immutable callback")
    got = sorted(_records(r, "per-task"), key=len)
    assert got[0] == [f"{ok.id}.s", 10]
    assert got[1][:2] == [f"{bad.id}.f", bad.id] and "negative" in got[1][2]
    assert _records(r, "frozen") == [["frozen", 7]]  # not the parent's result
    assert frozen.result(timeout=1) == 2


def test_a_callback_on_another_queue(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    start_worker("--queue", "default")
    start_worker("--queue", "notify")
    job = app.queue().enqueue_call(
        qtasks.add, (2, 3), on_success=qtasks.record_result.s("x").set(queue="notify")
    )
    wait_until(lambda: _records(r, "x"), what="the callback on the other queue")
    assert _records(r, "x") == [[f"{job.id}.s", 5]]
    callback = app.job(f"{job.id}.s", queue="notify")
    assert callback.result(timeout=30) is None and callback.status() == "finished"


def test_a_parent_buried_by_another_worker_still_gets_its_callback(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """The parent's worker is SIGKILLed mid-job; the next fetch buries it as poison
    (max_deliveries=1) in fetch.lua, which no worker hands off at once: the sweep does."""
    first = start_worker("--lease", "1")
    job = app.queue().enqueue_call(
        qtasks.killed_midway, ("poison",), on_failure=qtasks.record_failure.s("poison")
    )
    wait_until(lambda: r.llen("test:started:poison"), what="the job to start")
    first.signal(signal.SIGKILL)
    start_worker("--lease", "1")
    wait_until(lambda: job.status() == "failed", what="the job to be buried")
    wait_until(
        lambda: _records(r, "poison"),
        timeout=defaults.HANDOFF_GRACE_SECONDS + 30,
        what="the sweep to hand the callback off",
    )
    ((cb_id, parent, error),) = _records(r, "poison")
    assert (cb_id, parent) == (f"{job.id}.f", job.id)
    assert "without an acknowledgement" in error  # the reason it was buried
    assert r.zcard(QueueKeys.of("default").handoff) == 0


def test_bad_callbacks_are_refused_in_the_caller(app: kubeq.App) -> None:
    q = app.queue()
    with pytest.raises(TypeError, match="on_success must be a task signature"):
        q.enqueue_call(qtasks.add, (1, 2), on_success=qtasks.record_result)
    with pytest.raises(ValueError, match="job id is derived"):
        q.enqueue_call(qtasks.add, (1, 2), on_failure=qtasks.record_failure.s().set(job_id="x"))
    with pytest.raises(kubeq.SerializationError, match="not JSON"):
        q.enqueue_call(qtasks.add, (1, 2), on_success=qtasks.record_result.s(object()))
    assert q.stats().backlog == 0
