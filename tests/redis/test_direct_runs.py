"""Sync jobs run straight in the thread lane (kubeq/worker/direct.py) end as they would under
their own asyncio task: the same result, retry, dead letter, reason and traceback, for every
way an attempt can end. A call with a timeout keeps its task (its clock is an asyncio timer),
so each case runs both ways in one in-process worker on the test's redis-server, and the
worker's own task factory counts which jobs got a task.

And the per-job path leaves nothing for the garbage collector: a job's objects are freed when
its outcome is sent, not by a collection (one left behind per job cost a no-op job a sixth of
its CPU in collections), and `kubeq worker` keeps what it loaded to start out of them."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Coroutine
from typing import Any, cast

import pytest
import qtasks

import kubeq
from kubeq.worker import Worker, WorkerSettings
from tests.redis import directtasks
from tests.redis.workers import StartWorker

ENDS = ["value", "raises", "not-json", "stop-iteration", "cancelled", "retry", "exit"]


def _drain(redis_url: str, *jobs: kubeq.Job, concurrency: int = 4) -> list[str]:
    """Run burst workers until ``jobs`` have ended (a retry is held back for a moment, and a
    burst worker stops when nothing is ready); returns the ids of the jobs they created an
    asyncio task for (one per attempt)."""
    ids: list[str] = []

    def factory(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kw: Any
    ) -> asyncio.Task[Any]:
        if getattr(coro, "__qualname__", "") == "Worker._execute":
            ids.append(coro.cr_frame.f_locals["d"].id)  # type: ignore[attr-defined]
        return asyncio.Task(coro, loop=loop, **kw)

    async def main() -> int:
        asyncio.get_running_loop().set_task_factory(cast("Any", factory))
        settings = WorkerSettings(
            "directtasks",
            ["default"],
            redis_url=redis_url,
            handle_signals=False,
            concurrency=concurrency,
            burst=True,
        )
        return await Worker(settings, dict(directtasks.app.tasks)).run()

    ended = ("finished", "failed")
    for _ in range(200):
        assert asyncio.run(main()) == 0
        if all(job.info().status in ended for job in jobs):
            return ids
        time.sleep(0.02)
    raise AssertionError(f"not ended: {[(j.id, j.info().status) for j in jobs]}")


def _seen(job: kubeq.Job) -> tuple[Any, ...]:
    """What a user reads of an ended job, less what differs between two jobs by nature
    (ids, times, the traceback's frames of the worker's own code)."""
    info = job.info()
    result = job.result(timeout=0) if info.status == "finished" else None
    if isinstance(result, dict):
        result = {k: v for k, v in result.items() if k != "id"}
    last = info.traceback.strip().splitlines()[-1:] if info.traceback else []
    return (info.status, info.attempts, info.error, info.reason, last, result)


@pytest.mark.parametrize("how", ENDS)
def test_a_sync_job_ends_the_same_run_directly_or_under_its_own_task(
    app: kubeq.App, redis_url: str, how: str
) -> None:
    directtasks.app.redis_url = redis_url
    direct = directtasks.ends.delay(how)
    timed = directtasks.ends.apply_async([how], timeout=30)
    tasks = _drain(redis_url, direct, timed)
    assert _seen(direct) == _seen(timed)
    if how == "value":
        assert direct.result(timeout=0)["id"] == direct.id  # current_job() was its own
    # every attempt of the timed call had a task of its own; none of the direct one did
    assert set(tasks) == {timed.id}
    assert len(tasks) == timed.info().attempts


def test_the_traceback_of_a_direct_run_shows_the_task_frame(app: kubeq.App, redis_url: str) -> None:
    directtasks.app.redis_url = redis_url
    job = directtasks.ends.apply_async(["raises"], max_attempts=1)
    _drain(redis_url, job)
    info = job.info()
    assert info.status == "failed"
    assert "in ends" in info.traceback and "ValueError: attempt 1 failed" in info.traceback


def test_many_direct_runs_on_few_slots_each_run_once(app: kubeq.App, redis_url: str) -> None:
    directtasks.app.redis_url = redis_url
    jobs = app.enqueue_many([directtasks.ends.s("value") for _ in range(2000)])
    assert _drain(redis_url, *jobs, concurrency=2) == []
    results = [j.result(timeout=0) for j in jobs]
    assert [r["id"] for r in results] == [j.id for j in jobs]
    assert {(r["attempt"], r["of"]) for r in results} == {(1, 2)}
    assert {(j.info().attempts, j.info().deliveries) for j in jobs[:50]} == {(1, 1)}


def test_jobs_leave_no_reference_cycles_behind(app: kubeq.App, redis_url: str) -> None:
    directtasks.app.redis_url = redis_url
    ends = ["value", "raises"] * 300  # each ends in one attempt: one worker drains them all
    jobs = app.enqueue_many([directtasks.ends.s(h).set(max_attempts=1) for h in ends])
    jobs += app.enqueue_many([directtasks.ends.s("value").set(timeout=30) for _ in range(200)])
    gc.collect()
    gc.disable()
    try:
        _drain(redis_url, *jobs)
        left = gc.collect()
    finally:
        gc.enable()
    # the worker's own objects (its client, pools and loop) are a few hundred, once; a cycle
    # per job would be thousands
    assert left < len(jobs), f"{left} objects in reference cycles after {len(jobs)} jobs"


def test_a_worker_process_keeps_its_start_up_out_of_collections(
    start_worker: StartWorker, app: kubeq.App
) -> None:
    start_worker("--queue", "default")
    frozen = app.enqueue_many([qtasks.frozen_objects.s()])[0].result(timeout=60)
    assert frozen > 10_000  # kubeq, redis-py, click and the tasks' modules
