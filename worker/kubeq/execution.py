"""Where a task's code runs: on the event loop, in a thread, or in a process; and timeouts.

``async def`` tasks run on the worker's loop; sync tasks in a thread pool, or in a spawn
process pool with ``--pool process`` (or ``@app.task(pool="process")``). The worker's loop
only awaits ``Executor.invoke`` and never learns which: this module owns the pools, the
timeout clock (it starts when a thread takes the job, not while the job waits for one), and
the bookkeeping of threads that Python cannot kill after a timeout (``abandoned``), which
``/healthz`` reports once every thread is stuck.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from .app import Task
from .registry import run_in_child

log = logging.getLogger("kubeq.worker")

__all__ = ["BrokenProcessPool", "Executor", "JobTimeout"]


class JobTimeout(Exception):
    """An execution ran past its timeout."""


@dataclass
class _ThreadRun:
    """One sync task handed to the thread pool; its fields change only on the event loop."""

    started: asyncio.Future[None]
    returned: bool = False
    abandoned: bool = False

    def mark_started(self) -> None:
        if not self.started.done():
            self.started.set_result(None)


class Executor:
    """Runs tasks for one worker process: ``await executor.invoke(task, args, kwargs, timeout)``."""

    def __init__(self, tasks_module: str, concurrency: int, pool: str) -> None:
        self.tasks_module = tasks_module
        self.concurrency = concurrency
        self.pool = pool
        self.thread_count = concurrency * 2
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.thread_count, thread_name_prefix="kubeq-task"
        )
        self.abandoned = 0
        """Threads still running a task whose attempt timed out (Python cannot kill them)."""
        self._processes: concurrent.futures.ProcessPoolExecutor | None = None

    def health(self) -> str | None:
        """A reason to fail /healthz, or None."""
        if self.abandoned >= self.thread_count:
            return f"all {self.thread_count} task threads are stuck in tasks that timed out"
        return None

    async def invoke(
        self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any], timeout: Any
    ) -> Any:
        """Run one attempt; raises what the task raised, JobTimeout, or BrokenProcessPool
        when a pool child died under it."""
        loop = asyncio.get_running_loop()
        run: _ThreadRun | None = None
        pool: concurrent.futures.ProcessPoolExecutor | None = None
        if task.is_async:
            work: Any = task.func(*args, **kwargs)
        elif (task.options.pool or self.pool) == "process":
            pool = self._process_pool()
            work = loop.run_in_executor(
                pool, run_in_child, self.tasks_module, task.name, args, kwargs
            )
        else:
            run = _ThreadRun(loop.create_future())
            work = loop.run_in_executor(
                self._threads, self._in_thread, loop, run, task.func, args, kwargs
            )
        try:
            if timeout is None:
                return await work
            if run is not None:
                # the clock starts when a thread picks the job up, not while it queues
                await asyncio.wait({run.started, work}, return_when=asyncio.FIRST_COMPLETED)
            return await asyncio.wait_for(work, float(timeout))
        except TimeoutError:
            if run is not None and not run.returned:
                run.abandoned = True  # its thread runs on: counted until it returns
                self.abandoned += 1
                log.warning(
                    "%s: a timed-out task still occupies a thread (%d of %d threads so)",
                    task.name,
                    self.abandoned,
                    self.thread_count,
                )
            raise JobTimeout(f"ran longer than its timeout of {timeout} s") from None
        except BrokenProcessPool:
            if pool is not None and self._processes is pool:
                self._processes = None  # a child died: the next job gets a fresh pool
                pool.shutdown(wait=False, cancel_futures=True)
            raise

    def _in_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        run: _ThreadRun,
        func: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run a sync task in a pool thread, telling the loop when it starts and ends."""
        loop.call_soon_threadsafe(run.mark_started)
        try:
            return func(*args, **kwargs)
        finally:
            loop.call_soon_threadsafe(self._thread_returned, run)

    def _thread_returned(self, run: _ThreadRun) -> None:
        run.returned = True
        if run.abandoned:
            self.abandoned -= 1

    def _process_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._processes is None:
            self._processes = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.concurrency,
                mp_context=multiprocessing.get_context("spawn"),
            )
        return self._processes

    def shutdown(self) -> None:
        """Stop the pools without waiting; terminate children still running handed-back jobs."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            children = list(getattr(self._processes, "_processes", {}).values())
            self._processes.shutdown(wait=False, cancel_futures=True)
            for child in children:
                child.terminate()
