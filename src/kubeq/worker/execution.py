"""Where a task's code runs: on the event loop, in a thread, or in a process; and timeouts.

``async def`` tasks run on the worker's loop; sync tasks in a thread pool, or in a spawn
process pool with ``--pool process`` (or ``@app.task(pool="process")``). A job's asyncio task
awaits ``Executor.invoke`` and never learns which; a sync job with no timeout is handed over
without a task of its own (``run_direct``, for direct.py). This module owns the pools, the
timeout clock (it starts when a thread or a child process takes the job, not while the job
waits for one), and the bookkeeping of threads that Python cannot kill after their attempt
ended (``abandoned``), which ``/healthz`` reports once every thread is stuck.

The process pool is pebble's ``ProcessPool`` rather than the standard library's: it kills
the child running a task that passed its timeout (and only that child, replaced at once),
and a child that dies fails only the task it ran (``ProcessDied``), not its bystanders.
pebble and multiprocessing are imported when the first task runs in a process: a worker
that runs every task in threads or on its loop never loads them.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubeq.client.app import Task
from kubeq.client.context import JobContext, reset_current, set_current
from kubeq.errors import SoftTimeLimitExceeded
from kubeq.worker.registry import run_in_child
from kubeq.worker.threads import Lane, Run

if TYPE_CHECKING:
    import pebble

log = logging.getLogger("kubeq.worker")

__all__ = ["Executor", "JobTimeout", "ProcessDied"]


_NO_CLOCKS: tuple[float | None, float | None] = (None, None)
"""Neither a timeout nor a soft timeout (a run of ``Executor.run_direct``)."""


class ProcessDied(OSError):
    """The child process running a task died under it (killed, crashed, os._exit): pebble's
    ``ProcessExpired``, with its message, exit code and pid."""

    def __init__(self, message: str, exitcode: int | None = None, pid: int | None = None):
        super().__init__(message)
        self.exitcode = exitcode
        self.pid = pid


class JobTimeout(Exception):
    """An execution ran past its timeout."""


@dataclass(slots=True)
class _ThreadRun:
    """One sync task handed to the thread lane; its fields change only on the event loop."""

    started: asyncio.Future[None] | None
    """Set when a thread takes the job: only when a timeout's clock waits for that."""
    ctx: JobContext | None = None
    abandoned: bool = False
    lane: Run | None = None
    """The lane's run: comes back (``on_return``) when its thread is done with it."""

    def mark_started(self) -> None:
        if self.started is not None and not self.started.done():
            self.started.set_result(None)


class Executor:
    """Runs tasks for one worker process: ``await executor.invoke(task, args, kwargs, timeout)``."""

    def __init__(self, tasks_module: str, concurrency: int, pool: str) -> None:
        self.tasks_module = tasks_module
        self.concurrency = concurrency
        self.pool = pool
        self.thread_count = concurrency * 2
        self._threads = Lane(self.thread_count, "kubeq-task", slots=concurrency)
        """Runs sync tasks and keeps the worker's ``concurrency`` slots (threads.py)."""
        self.abandoned = 0
        """Threads still running a task whose attempt timed out (Python cannot kill them)."""
        self._processes: pebble.ProcessPool | None = None

    def in_thread(self, task: Task[Any, Any]) -> bool:
        """Whether ``task`` runs in the thread lane (a sync task, no process pool)."""
        return not task.is_async and (task.options.pool or self.pool) != "process"

    def reserve(self) -> bool:
        """Take one of the worker's slots for a job that does not run in the thread lane (an
        async task, a process pool's), or a sync job that must not wait in the lane; False
        when none is free."""
        return self._threads.reserve()

    def unreserve(self) -> None:
        """Give back a slot taken by ``reserve``."""
        self._threads.unreserve()

    def withdraw(self, run: Run) -> bool:
        """Take back a thread run no thread has taken yet: True when it will never run."""
        return self._threads.cancel(run)

    def after_returns(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop once per pass of the thread lane's returned runs,
        after their ``on_return`` calls (``Lane.after_returns``)."""
        self._threads.after_returns = callback

    def free(self) -> int:
        """Slots free now."""
        return self._threads.free()

    def waiting(self) -> int:
        """Sync jobs handed to the lane that wait for a slot."""
        return self._threads.waiting()

    def health(self) -> str | None:
        """A reason to fail /healthz, or None."""
        if self.abandoned >= self.thread_count:
            return f"all {self.thread_count} task threads are stuck in tasks that timed out"
        return None

    async def invoke(
        self,
        task: Task[Any, Any],
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: Any,
        ctx: JobContext | None = None,
        soft_timeout: float | None = None,
        on_abandon: Callable[[asyncio.Future[None]], None] | None = None,
        on_submit: Callable[[Run], None] | None = None,
        prepaid: bool = False,
    ) -> Any:
        """Run one attempt as ``ctx`` (``kubeq.current_job()``); raises what the task raised,
        JobTimeout, SoftTimeLimitExceeded, or ProcessDied when a pool child died under it.
        Cancelling the caller (an abort, a drain's hand-back) stops the attempt: an async
        task is cancelled, a child process killed, a thread left to notice
        ``current_job().aborted`` and counted as abandoned until it returns; ``on_abandon``
        then gets a future that is done when the thread returns.

        A sync task in the thread lane runs when a slot is free, unless ``prepaid`` (its caller
        holds a slot: ``reserve``); ``on_submit`` gets the lane's run as it is queued."""
        loop = asyncio.get_running_loop()
        run: _ThreadRun | None = None
        soft: asyncio.TimerHandle | None = None
        fired: list[bool] = []
        if task.is_async:
            if ctx is not None:
                ctx.start_clock(timeout, soft_timeout)
            work: Any = task.func(*args, **kwargs)
            if soft_timeout is not None:
                work = asyncio.ensure_future(work)
                soft = loop.call_later(soft_timeout, _soft_cancel, work, fired)
        elif (task.options.pool or self.pool) == "process":
            return await self._in_process(task, args, kwargs, timeout, ctx, soft_timeout)
        else:
            run = _ThreadRun(None if timeout is None else loop.create_future(), ctx)
            # in the caller's context (as asyncio.to_thread), so the task sees its trace span
            run.lane = self._threads.submit(
                functools.partial(
                    self._in_thread, loop, run, task.func, args, kwargs, (timeout, soft_timeout)
                ),
                contextvars.copy_context(),
                prepaid,
            )
            if on_submit is not None:
                on_submit(run.lane)
            work = run.lane.future
            assert work is not None  # a run submitted without on_return has one
        try:
            if timeout is None:
                return await work
            if run is not None and run.started is not None:
                # the clock starts when a thread picks the job up, not while it queues
                await asyncio.wait({run.started, work}, return_when=asyncio.FIRST_COMPLETED)
            return await asyncio.wait_for(work, float(timeout))
        except TimeoutError:
            self._abandon(task, run, "timed out")
            raise JobTimeout(f"ran longer than its timeout of {timeout} s") from None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if fired and (current is None or not current.cancelling()):
                # the task let the cancellation through after its clean-up: report why
                raise SoftTimeLimitExceeded(
                    f"ran longer than its soft timeout of {soft_timeout} s (cancelled)"
                ) from None
            returned = self._abandon(task, run, "was stopped")
            if returned is not None and on_abandon is not None:
                on_abandon(returned)
            raise
        finally:
            if soft is not None:
                soft.cancel()

    def run_direct(
        self,
        task: Task[Any, Any],
        args: list[Any],
        kwargs: dict[str, Any],
        ctx: JobContext,
        on_return: Callable[[Run], None],
    ) -> Run:
        """Hand one attempt of a sync task with no timeout to the thread lane with no
        asyncio future or task of its own (direct.py): ``on_return`` gets the run on the loop
        once its thread is done with it, or once it comes back unrun."""
        run = _ThreadRun(None, ctx)  # no lane: only a task's stop (``_abandon``) reads it
        loop = asyncio.get_running_loop()
        return self._threads.submit(
            functools.partial(self._in_thread, loop, run, task.func, args, kwargs, _NO_CLOCKS),
            contextvars.copy_context(),
            on_return=on_return,
        )

    def stop_direct(self, lane: Run, task_name: str) -> bool:
        """Stop a run of ``run_direct``: True when it will never begin (withdrawn); else its
        thread runs on, its slot is free for the next job, and it counts as abandoned until
        ``direct_returned`` says it came back."""
        if self._threads.cancel(lane):
            return True
        self._threads.abandon(lane)
        self._count_abandoned(task_name, "was stopped")
        return False

    def direct_returned(self) -> None:
        """A run that ``stop_direct`` left to its thread came back."""
        self.abandoned -= 1

    def _abandon(
        self, task: Task[Any, Any], run: _ThreadRun | None, why: str
    ) -> asyncio.Future[None] | None:
        """A thread whose attempt ended without it (timeout, abort) runs on: count it until it
        returns (only such a run asks to be told of its return); returns a future done when
        it does. A run no thread took yet never starts (None)."""
        if run is None or run.lane is None or run.lane.back or run.abandoned:
            return None
        if self._threads.cancel(run.lane):
            return None
        self._threads.abandon(run.lane)  # its slot is free for the next job
        run.abandoned = True  # its thread runs on: counted until it returns
        self._count_abandoned(task.name, why)
        returned: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def back(_: Run) -> None:
            self._thread_returned(run)
            if not returned.done():
                returned.set_result(None)

        run.lane.on_return = back
        return returned

    def _count_abandoned(self, task_name: str, why: str) -> None:
        """One more thread runs on in an attempt that ended without it: say so."""
        self.abandoned += 1
        log.warning(
            "%s: a task that %s still occupies a thread (%d of %d threads so)",
            task_name,
            why,
            self.abandoned,
            self.thread_count,
        )

    async def _in_process(
        self,
        task: Task[Any, Any],
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: Any,
        ctx: JobContext | None,
        soft_timeout: float | None,
    ) -> Any:
        """Run in a pool child; pebble starts the timeout when the child takes the task and
        kills that child when it passes. Cancelling (an abort, a drain's hand-back) kills it
        too. The soft timeout is a signal the child raises as SoftTimeLimitExceeded."""
        future = self._process_pool().submit(
            run_in_child,
            None if timeout is None else float(timeout),
            self.tasks_module,
            task.name,
            args,
            kwargs,
            ctx,
            (None if timeout is None else float(timeout), soft_timeout),
        )
        import pebble  # noqa: PLC0415 - loaded by _process_pool already

        try:
            return await asyncio.wrap_future(future)
        except pebble.ProcessExpired as exc:
            raise ProcessDied(str(exc), exc.exitcode, exc.pid) from exc
        except TimeoutError:
            raise JobTimeout(
                f"ran longer than its timeout of {timeout} s (its process was stopped)"
            ) from None
        except asyncio.CancelledError:
            future.cancel()  # type: ignore[no-untyped-call]
            raise

    def _in_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        run: _ThreadRun,
        func: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        clocks: tuple[float | None, float | None],
    ) -> Any:
        """Run a sync task in a pool thread as its job (``current_job()``), telling the loop
        when it starts if a timeout's clock waits for that (each such call wakes the loop)."""
        if run.started is not None:
            loop.call_soon_threadsafe(run.mark_started)
        if run.ctx is not None and clocks is not _NO_CLOCKS:  # a direct run has no clock
            run.ctx.start_clock(*clocks)
        token = set_current(run.ctx)
        try:
            return func(*args, **kwargs)
        finally:
            reset_current(token)

    def _thread_returned(self, run: _ThreadRun) -> None:
        if run.abandoned:
            self.abandoned -= 1

    def _process_pool(self) -> pebble.ProcessPool:
        if self._processes is None:
            import multiprocessing  # noqa: PLC0415 - only a worker with a process pool

            import pebble  # noqa: PLC0415 - the same

            self._processes = pebble.ProcessPool(
                max_workers=self.concurrency, context=multiprocessing.get_context("spawn")
            )
        return self._processes

    def shutdown(self) -> None:
        """Stop the pools without waiting; stop children still running handed-back jobs."""
        self._threads.close()
        if self._processes is not None:
            self._processes.stop()  # type: ignore[no-untyped-call]
            self._processes.join(timeout=2)


def _soft_cancel(work: asyncio.Future[Any], fired: list[bool]) -> None:
    """An async task's soft timeout: cancel it so it can clean up (``except CancelledError``
    or ``finally``); the hard timeout still applies if it goes on."""
    fired.append(True)
    work.cancel("soft timeout")
