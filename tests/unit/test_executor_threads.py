"""The thread pool's bookkeeping (execution.Executor): a sync task that outlives its timeout
keeps its thread, is counted as abandoned while it runs on, and stops being counted the
moment it returns; a task that returns in time is never counted. Real threads, no Redis."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import kubeq
from kubeq.worker.execution import Executor, JobTimeout

app = kubeq.App("redis://127.0.0.1:1/0")  # never connected: the executor runs tasks only
release = threading.Event()


@app.task(name="t.slow")
def slow() -> str:
    release.wait(10)
    return "late"


@app.task(name="t.quick")
def quick(x: int) -> int:
    return x * 2


def test_a_timed_out_thread_is_counted_until_it_returns() -> None:
    async def main() -> None:
        ex = Executor("tests.unit.test_executor_threads", concurrency=1, pool="thread")
        try:
            assert await ex.invoke(quick, [21], {}, None) == 42
            assert await ex.invoke(quick, [1], {}, 5.0) == 2  # a timeout it keeps
            assert ex.abandoned == 0
            with pytest.raises(JobTimeout):
                await ex.invoke(slow, [], {}, 0.05)
            assert ex.abandoned == 1
            release.set()  # the thread returns now
            deadline = time.monotonic() + 5
            while ex.abandoned and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert ex.abandoned == 0
            assert ex.health() is None
        finally:
            ex.shutdown()

    asyncio.run(main())


def test_an_executor_whose_every_thread_is_stuck_is_unhealthy() -> None:
    release.clear()

    async def main() -> None:
        ex = Executor("tests.unit.test_executor_threads", concurrency=1, pool="thread")
        try:
            for _ in range(ex.thread_count):
                with pytest.raises(JobTimeout):
                    await ex.invoke(slow, [], {}, 0.05)
            assert ex.abandoned == ex.thread_count
            assert "stuck" in (ex.health() or "")
        finally:
            release.set()
            ex.shutdown()

    asyncio.run(main())
