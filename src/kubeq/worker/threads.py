"""The threads that run sync tasks, built for many short jobs: one queue in, batches out.

``concurrent.futures.ThreadPoolExecutor`` + ``asyncio.wrap_future`` cost, per job, a
``concurrent.futures.Future`` (a ``threading.Condition``), a chain of callbacks between the
two futures, and a write to the event loop's self-pipe when the thread returns: a no-op job
spent more time in that hand-off than in the rest of the worker (bench/README.md).
Here a job is one ``Run`` put on a ``queue.SimpleQueue``; the thread that returns appends it
to a deque and wakes the loop only if no wake-up is already on its way, so the jobs that end
while the loop is busy come back in one call. Each job still gets an asyncio future on the
loop (``Run.future``) that the worker awaits, so timeouts, aborts and the drain's
hand-back stay plain asyncio cancellations.

Threads start on demand, one whenever a job would otherwise wait while fewer than ``limit``
threads live: a cancelled run that a thread already took is "abandoned" (Python cannot stop a
thread) and its thread runs on, so up to ``limit`` threads serve ``concurrency`` slots
(``Executor`` counts the abandoned ones for /healthz).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Lane", "Run"]


class Run:
    """One sync call handed to the lane. ``future`` lives on the loop; the rest is written by
    the thread that takes the run and read by the loop after it comes back."""

    __slots__ = (
        "back",
        "call",
        "claimed",
        "context",
        "future",
        "ok",
        "on_return",
        "skipped",
        "value",
    )

    def __init__(
        self, future: asyncio.Future[Any], call: Callable[[], Any], context: contextvars.Context
    ) -> None:
        self.future = future
        self.call = call
        self.context = context
        self.claimed = False
        """A thread took it (it runs, or ran)."""
        self.skipped = False
        """Cancelled before a thread took it: never ran."""
        self.ok = False
        self.value: Any = None
        self.back = False
        """Its thread is done with it (set on the loop, by ``Lane``)."""
        self.on_return: Callable[[Run], None] | None = None
        """Called on the loop when the thread is done with it (set for abandoned runs)."""


class Lane:
    """``submit(call)`` runs ``call()`` in a lane thread; ``await run.future`` for its value."""

    def __init__(self, limit: int, name: str = "kubeq-task") -> None:
        self.limit = limit
        self.name = name
        self._todo: queue.SimpleQueue[Run | None] = queue.SimpleQueue()
        self._back: collections.deque[Run] = collections.deque()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._unclaimed = 0
        self._signalled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def submit(self, call: Callable[[], Any], context: contextvars.Context) -> Run:
        """Queue ``call`` (run in ``context``); must be called on the event loop."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        run = Run(loop.create_future(), call, context)
        with self._lock:
            self._unclaimed += 1
            start = self._idle < self._unclaimed and self._threads < self.limit
            if start:
                self._threads += 1
        if start:
            threading.Thread(
                target=self._serve, name=f"{self.name}-{self._threads}", daemon=True
            ).start()
        self._todo.put(run)
        return run

    def cancel(self, run: Run) -> bool:
        """Stop ``run`` if no thread took it yet (True); False when a thread runs it."""
        if run.claimed:
            return False
        run.skipped = True
        return not run.claimed  # a thread that claimed it meanwhile sees `skipped` and skips

    def close(self) -> None:
        """Let every idle thread end; runs still queued are skipped. Never waits."""
        self._closed = True
        with self._lock:
            threads = self._threads
        for _ in range(threads):
            self._todo.put(None)

    # -- threads -----

    def _serve(self) -> None:
        todo, lock = self._todo, self._lock
        with lock:
            self._idle += 1
        while True:
            run = todo.get()
            with lock:
                self._idle -= 1
                if run is not None:
                    self._unclaimed -= 1
            if run is None:
                with lock:
                    self._threads -= 1
                return
            run.claimed = True
            if not run.skipped and not self._closed:
                try:
                    run.value = run.context.run(run.call)
                    run.ok = True
                except StopIteration as exc:  # an asyncio future refuses StopIteration
                    run.value = RuntimeError(f"the task raised StopIteration({exc})")
                except BaseException as exc:  # a task's SystemExit is its failure, not ours
                    run.value = exc
            else:
                run.skipped = True
            with lock:  # idle again before the loop hears of it: its next run needs no thread
                self._idle += 1
            self._back.append(run)
            if not self._signalled:
                self._signalled = True
                loop = self._loop
                if loop is not None:
                    with contextlib.suppress(RuntimeError):  # the loop closed: exiting
                        loop.call_soon_threadsafe(self._deliver)

    # -- the loop -----

    def _deliver(self) -> None:
        """On the loop: settle every run that came back since the last call."""
        self._signalled = False  # before reading: a run appended after this wakes us again
        back = self._back
        while back:
            run = back.popleft()
            run.back = True
            future = run.future
            if not future.done():
                if run.skipped:
                    future.cancel()
                elif run.ok:
                    future.set_result(run.value)
                else:
                    future.set_exception(run.value)
            if run.on_return is not None:
                run.on_return(run)
            run.value = None  # drop the reference (a large result, a traceback)
