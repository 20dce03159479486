"""The threads that run sync tasks, built for many short jobs: one queue in, batches out,
and at most ``slots`` runs at once.

``concurrent.futures.ThreadPoolExecutor`` + ``asyncio.wrap_future`` cost, per job, a
``concurrent.futures.Future`` (a ``threading.Condition``), a chain of callbacks between the
two futures, and a write to the event loop's self-pipe when the thread returns: a no-op job
spent more time in that hand-off than in the rest of the worker (bench/README.md).
Here a job is one ``Run`` put on a ``queue.SimpleQueue``; the thread that returns appends it
to a deque and wakes the loop only if no wake-up is already on its way, so the jobs that end
while the loop is busy come back in one call. A job run under its own asyncio task gets an
asyncio future on the loop (``Run.future``) that the task awaits, so timeouts, aborts and
the drain's hand-back stay plain asyncio cancellations; a job the loop runs directly
(direct.py) gets none and is told in ``Run.on_return``. A run that comes back drops its call
and context, which refer to the caller's state that refers back to the run, so that no job
leaves a reference cycle for the garbage collector.

The lane keeps the worker's ``slots``. A run submitted while one is free takes it and goes
on the queue; one submitted while every slot is taken is parked, and the thread whose run
returns hands its slot to the oldest parked run and runs it at once. So the worker can give
the lane a few jobs more than its free slots (``defaults.LANE_AHEAD``), and a thread that
finishes a short job starts the next without a trip through the loop: on a busy worker that
trip (the loop woken to start the next job, a thread woken to run it) cost more than a
no-op job's whole run. Jobs that do not run here (async tasks, process pools) hold a slot
through ``reserve``; a run submitted ``prepaid`` runs on a slot its caller reserved.

Threads start on demand, one whenever a run would otherwise wait on the queue while fewer
than ``limit`` threads live: a cancelled run that a thread already took is "abandoned"
(Python cannot stop a thread); it gives its slot back (``abandon``) and its thread runs on,
so up to ``limit`` threads serve the slots (``Executor`` counts the abandoned ones for
/healthz).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Lane", "Run"]


def _done() -> None:
    """The call of a run that came back (``Lane._deliver`` drops the real one)."""


_DONE: Callable[[], Any] = _done
_EMPTY = contextvars.Context()


class Run:
    """One sync call handed to the lane. ``future`` lives on the loop; the rest is written by
    the thread that takes the run and read by the loop after it comes back."""

    __slots__ = (
        "back",
        "began",
        "call",
        "claimed",
        "context",
        "ended",
        "future",
        "holds",
        "ok",
        "on_return",
        "prepaid",
        "skipped",
        "value",
    )

    def __init__(
        self,
        future: asyncio.Future[Any] | None,
        call: Callable[[], Any],
        context: contextvars.Context,
        prepaid: bool = False,
    ) -> None:
        self.future = future
        """Settled with the call's value when it comes back; None for a run whose caller
        reads the value in ``on_return`` instead."""
        self.call = call
        self.context = context
        self.prepaid = prepaid
        """It runs on a slot its caller reserved (``Lane.reserve``): it takes none."""
        self.claimed = False
        """A thread took it (it runs, or ran)."""
        self.skipped = False
        """Cancelled before a thread took it: never ran."""
        self.holds = False
        """It holds a slot of the lane (from its start until it returns or is abandoned)."""
        self.began = 0.0
        self.ended = 0.0
        """When its call began and returned (``time.monotonic``; 0 until then)."""
        self.ok = False
        self.value: Any = None
        self.back = False
        """Its thread is done with it (set on the loop, by ``Lane``)."""
        self.on_return: Callable[[Run], None] | None = None
        """Called on the loop when the thread is done with it, or when it comes back unrun
        (withdrawn, or the lane closed), after ``future`` is settled and before ``value`` is
        dropped."""


class Lane:
    """``submit(call)`` runs ``call()`` in a lane thread; ``await run.future`` for its value."""

    def __init__(self, limit: int, name: str = "kubeq-task", slots: int | None = None) -> None:
        self.limit = limit
        """Threads at most."""
        self.slots = limit if slots is None else slots
        """Runs (and reservations) at once."""
        self.name = name
        self._todo: queue.SimpleQueue[Run | None] = queue.SimpleQueue()
        self._parked: collections.deque[Run] = collections.deque()
        """Runs submitted while every slot was taken, oldest first."""
        self._back: collections.deque[Run] = collections.deque()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._unclaimed = 0
        self._busy = 0
        """Slots taken: runs given a slot (until they return or are abandoned) and
        reservations."""
        self._signalled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.after_returns: Callable[[], None] | None = None
        """Called on the loop once the runs that came back together have all been handed
        back (their futures settled, their ``on_return`` called): one call per pass."""

    def submit(
        self,
        call: Callable[[], Any],
        context: contextvars.Context,
        prepaid: bool = False,
        on_return: Callable[[Run], None] | None = None,
    ) -> Run:
        """Queue ``call`` (run in ``context``); must be called on the event loop. With
        ``on_return`` the run has no future: the caller reads its outcome (``ok``, ``value``,
        ``skipped``) there."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        run = Run(None if on_return else loop.create_future(), call, context, prepaid)
        run.on_return = on_return
        with self._lock:
            if not prepaid and self._busy >= self.slots:
                self._parked.append(run)  # the thread that frees a slot runs it
                return run
            if not prepaid:
                run.holds = True
                self._busy += 1
            start = self._enqueue_locked()
        self._put(run, start)
        return run

    def free(self) -> int:
        """Slots no run or reservation holds."""
        return max(0, self.slots - self._busy)

    def waiting(self) -> int:
        """Runs that wait for a slot (cancelled ones included until a thread drops them)."""
        return len(self._parked)

    def cancel(self, run: Run) -> bool:
        """Stop ``run`` if no thread took it yet (True); False when a thread runs it."""
        with self._lock:  # threads claim under the lock too: the run is theirs or skipped
            if run.claimed:
                return False
            run.skipped = True
            return True

    def abandon(self, run: Run) -> None:
        """``run``'s caller gave up on it while its thread runs on: its slot is free now."""
        with self._lock:
            if not run.holds:
                return
            run.holds = False  # its thread, when it returns, gives back nothing
        self._free_slot()

    def reserve(self) -> bool:
        """Take a slot for a job that does not run here (True), if one is free."""
        with self._lock:
            if self._busy >= self.slots:
                return False
            self._busy += 1
            return True

    def unreserve(self) -> None:
        """Give back a slot taken by ``reserve``."""
        self._free_slot()

    def _free_slot(self) -> None:
        """On the loop: a slot came free; the oldest parked run takes it."""
        with self._lock:
            self._busy -= 1
            nxt = self._unpark_locked()
            start = self._enqueue_locked() if nxt is not None else False
        if nxt is not None:
            self._put(nxt, start)
        if self._back:  # cancelled parked runs were dropped: they come back too
            self._signal()

    def close(self) -> None:
        """Let every idle thread end; runs still queued are skipped. Never waits."""
        self._closed = True
        with self._lock:
            threads = self._threads
            parked = list(self._parked)
            self._parked.clear()
        for _ in range(threads):
            self._todo.put(None)
        for run in parked:
            run.claimed = run.skipped = True
            self._returned(run)

    # -- under the lock -----

    def _enqueue_locked(self) -> bool:
        """A run is about to be put on the queue: whether a thread must start for it."""
        self._unclaimed += 1
        start = self._idle < self._unclaimed and self._threads < self.limit
        if start:
            self._threads += 1
        return start

    def _unpark_locked(self, claim: bool = False) -> Run | None:
        """The oldest parked run, given the slot just freed (cancelled ones are dropped and
        sent back); None when none waits or no slot is free. ``claim``: the calling thread
        runs it (else it goes on the queue)."""
        while self._parked and self._busy < self.slots:
            run = self._parked.popleft()
            if claim or run.skipped:
                run.claimed = True
            if run.skipped:  # cancelled while it waited: it never runs
                self._back.append(run)
                continue
            run.holds = True
            self._busy += 1
            return run
        return None

    # -- threads -----

    def _put(self, run: Run, start: bool) -> None:
        if start:
            threading.Thread(
                target=self._serve, name=f"{self.name}-{self._threads}", daemon=True
            ).start()
        self._todo.put(run)

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
                    run.claimed = True  # from now on ``cancel`` leaves it to this thread
            if run is None:
                with lock:
                    self._threads -= 1
                return
            while run is not None:
                self._run(run)
                with lock:  # its slot goes to the oldest parked run, which this thread runs
                    if run.holds:
                        run.holds = False
                        self._busy -= 1
                    nxt = self._unpark_locked(claim=True)
                    if nxt is None:  # idle again before the loop hears of it
                        self._idle += 1
                self._returned(run)
                run = nxt

    def _run(self, run: Run) -> None:
        if run.skipped or self._closed:
            run.skipped = True
            return
        run.began = time.monotonic()
        try:
            run.value = run.context.run(run.call)
            run.ok = True
        except StopIteration as exc:  # an asyncio future refuses StopIteration
            run.value = RuntimeError(f"the task raised StopIteration({exc})")
        except BaseException as exc:  # a task's SystemExit is its failure, not ours
            run.value = exc
        run.ended = time.monotonic()

    def _returned(self, run: Run) -> None:
        """Hand ``run`` back to the loop: one wake-up for all that return meanwhile."""
        self._back.append(run)
        self._signal()

    def _signal(self) -> None:
        """Wake the loop to take what came back (``_deliver``), unless a wake-up is on its way."""
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
            if future is not None and not future.done():
                if run.skipped:
                    future.cancel()
                elif run.ok:
                    future.set_result(run.value)
                else:
                    future.set_exception(run.value)
            if run.on_return is not None:
                run.on_return(run)
            # what the run referred to goes with it, not at the next garbage collection: its
            # call refers to its caller's state, which refers back to the run
            run.value = run.on_return = None
            run.call, run.context = _DONE, _EMPTY
        if self.after_returns is not None:
            self.after_returns()
