"""A fetch's jobs are placed (handed to the thread lane, or kept for a slot) just after the
reply is read, once the loop has written its next round trip (kubeq/worker/state.py,
``_place_fresh``), so that Redis works on that round trip meanwhile. Until then they are the
worker's like any leased job: held, and renewed by its heartbeat; handed back unstarted, no
attempt counted, when the worker stops; never started when aborted. An in-process worker
driven one round trip at a time, on the test's redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import kubeq
from kubeq.worker import Worker, WorkerSettings
from tests.redis import directtasks


def _with_worker(redis_url: str, body: Callable[[Worker], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        settings = WorkerSettings(
            "directtasks", ["default"], redis_url=redis_url, handle_signals=False, concurrency=2
        )
        worker = Worker(settings, dict(directtasks.app.tasks))
        try:
            return await body(worker)
        finally:
            worker.executor.shutdown()
            await worker._redis.aclose()

    return asyncio.run(main())


def _jobs(app: kubeq.App, n: int) -> list[kubeq.Job]:
    directtasks.app.redis_url = app.redis_url
    return app.enqueue_many([directtasks.ends.s("value") for _ in range(n)])


def test_a_fetch_s_jobs_are_held_at_once_and_placed_on_the_loop_s_next_turn(
    app: kubeq.App, redis_url: str
) -> None:
    jobs = _jobs(app, 2)

    async def body(worker: Worker) -> tuple[int, int, int]:
        await worker._round_trip(fetch=True)
        held = len(worker.inflight)
        started = sum(d.runner is not None for d in worker.inflight.values())
        await asyncio.sleep(0)  # the loop's next turn
        return held, started, sum(d.runner is not None for d in worker.inflight.values())

    held, before, after = _with_worker(redis_url, body)
    assert (held, before, after) == (2, 0, 2)
    assert {j.info().status for j in jobs} == {"active"}  # leased, as any job a worker holds


def test_jobs_not_placed_yet_go_back_unstarted_when_the_worker_stops(
    app: kubeq.App, redis_url: str
) -> None:
    jobs = _jobs(app, 2)

    async def body(worker: Worker) -> list[bool]:
        await worker._round_trip(fetch=True)
        worker.request_stop()  # SIGTERM arrives before the loop turns
        await asyncio.sleep(0)
        started = [d.runner is not None for d in worker.inflight.values()]
        await worker._round_trip(fetch=False)  # the hand-back is sent
        return started

    assert _with_worker(redis_url, body) == []  # handed back: none is held any more
    for job in jobs:
        info = job.info()
        assert (info.status, info.attempts) == ("queued", 0)


def test_an_abort_before_placement_never_starts_the_job(app: kubeq.App, redis_url: str) -> None:
    aborted, other = _jobs(app, 2)

    async def body(worker: Worker) -> None:
        await worker._round_trip(fetch=True)
        assert aborted.abort()
        worker._abort(worker.inflight[("default", aborted.id)])  # as its heartbeat would
        await asyncio.sleep(0)
        assert ("default", aborted.id) not in worker.inflight
        assert worker.inflight[("default", other.id)].runner is not None
        for _ in range(200):  # the other one runs; both outcomes are sent
            await asyncio.sleep(0.01)
            await worker._round_trip(fetch=False)
            if not worker.inflight:
                break

    _with_worker(redis_url, body)
    info = aborted.info()
    assert (info.status, info.attempts, info.result) == ("aborted", 0, "")
    assert other.result(timeout=5)["id"] == other.id
