"""Sync tasks' jobs handed to the thread lane with no asyncio task of their own.

Most jobs a worker runs are sync tasks with no timeout. Such an attempt needs nothing from
the event loop while it runs: the lane (threads.py) runs it and keeps its slot. Giving it an
asyncio task anyway (``Worker._execute`` -> ``run_attempt`` -> ``Executor.invoke``, awaiting
the lane's future) cost a no-op job about a third of the worker's CPU: the task's creation, a
step to submit the run, a callback and a second step when the run came back. Here the loop
submits the run itself when the job goes to the lane (``_start_direct``), and the lane calls
``_direct_returned`` on the loop when the thread is done with it, which turns the run into a
``Settlement`` with the same rules as ``run_attempt`` (``delivery.finished`` and
``delivery.failure``) and settles it. The runs that come back together are handed back in
one pass; once it is done, what waits starts on the slots they freed (``_lane_pass_done``:
one ``_start_waiting`` for the pass, where a busy drain handed back tens of runs at a time).

The job's ``runner`` is then a ``DirectRun``: a future, done when the attempt has ended
here, that the drain waits on as on a task, and whose ``cancel`` stops the attempt as
cancelling its task would: a run no thread has taken is withdrawn; one that runs is left to
its thread (Python cannot stop a thread; ``current_job().aborted`` tells it), counted as
abandoned until it returns, and an aborted job is acknowledged once it has.

Every other job keeps its asyncio task: async tasks and process pools, a task or call with a
timeout (its clock is an asyncio timer), chords and batches (they read Redis before the
run), calls whose options do not parse (``run_attempt`` dead-letters them with the reason),
and any attempt while an OpenTelemetry SDK is configured (its span wraps the task's await).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from kubeq import tracing
from kubeq.client.app import Task
from kubeq.options import apply_retry_overrides
from kubeq.outcomes import Outcome, Settlement
from kubeq.retry import RetryPolicy
from kubeq.worker.delivery import Delivery, failure, finished, job_context
from kubeq.worker.settings import WorkerSettings
from kubeq.worker.threads import Run
from kubeq.worker.upkeep import Upkeep

log = logging.getLogger("kubeq.worker")

__all__ = ["DirectLane", "DirectRun"]

_TIMERS = ("timeout", "soft_timeout")
"""The call options that give an attempt a clock on the loop (not run directly)."""


class DirectRun(asyncio.Future[None]):
    """The ``runner`` of a job run straight in the lane: done when its attempt has ended
    here; ``cancel()`` stops the attempt (``stop``) as cancelling its task would."""

    __slots__ = ("_stop", "abandoned")

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
        super().__init__(loop=loop)
        self._stop: Callable[[], None] | None = stop
        self.abandoned = False
        """Stopped while its thread ran it: counted by the executor until it returns."""

    def cancel(self, msg: object = None) -> bool:
        if not super().cancel(msg):
            return False
        if self._stop is not None:
            self._stop()
        return True

    def ended(self) -> None:
        """Its attempt ended here: done (unless cancelled), and what it referred to dropped
        (its ``stop`` refers to the job, which refers back to it)."""
        self._stop = None
        if not self.done():
            self.set_result(None)


class DirectLane(Upkeep):
    """The worker's direct runs (see the module's docstring)."""

    def __init__(self, settings: WorkerSettings, tasks: dict[str, Task[Any, Any]]) -> None:
        super().__init__(settings, tasks)
        self._slot_freed = False
        """A direct run came back in the lane's pass under way: once the pass is done, what
        waits starts on the slots freed (``_lane_pass_done``)."""
        self.executor.after_returns(self._lane_pass_done)

    def _lane_pass_done(self) -> None:
        """The lane handed back the runs that came back together: start what waits on the
        slots they freed, once for the pass (``_start_waiting``), not once per run."""
        if self._slot_freed:
            self._slot_freed = False
            self._start_waiting()

    def _start_direct(self, d: Delivery) -> bool:
        """Submit ``d``'s attempt to the thread lane with no asyncio task, if it may run so
        (True); False leaves it to ``run_attempt``."""
        call = d.call
        if call is None or tracing.active():
            return False
        name, args, kwargs, options = call
        task = self.tasks.get(name)
        if task is None:
            return False
        opts = task.options
        if opts.timeout is not None or opts.soft_timeout is not None:
            return False
        policy = opts.retry
        if options:
            if any(key in options for key in _TIMERS):
                return False
            try:
                policy = apply_retry_overrides(policy, options)
            except (TypeError, ValueError):
                return False
        d.call = None
        d.task_name = name
        d.entered = True
        ctx = d.context = job_context(d, name, policy.max_attempts, self._redis_url)
        runner = DirectRun(asyncio.get_running_loop(), functools.partial(self._direct_stop, d))
        d.runner = runner
        d.lane = self.executor.run_direct(
            task, args, kwargs, ctx, functools.partial(self._direct_returned, d, runner, policy)
        )
        return True

    def _direct_stop(self, d: Delivery) -> None:
        """Its runner was cancelled (abort, lost, hand-back): withdraw the run, or leave it
        to its thread, abandoned."""
        lane, runner = d.lane, d.runner
        if lane is None or not isinstance(runner, DirectRun):
            return
        if not self.executor.stop_direct(lane, d.task_name):
            runner.abandoned = True

    def _direct_returned(
        self, d: Delivery, runner: DirectRun, policy: RetryPolicy, run: Run
    ) -> None:
        """On the loop: the lane is done with ``d``'s run (it returned, or came back unrun)."""
        took = d.ran_for(0.0, time.monotonic())
        if took is not None:
            self._prefetch.observe(took)
        if runner.abandoned:
            self.executor.direct_returned()
        d.lane = None  # its run (the call, its context) is not kept with the outcome
        self._slot_freed = True  # what waits takes the slot at the pass's end
        if runner.done():  # stopped: aborted, no longer ours, or handed back
            runner.ended()
            if d.aborted and not d.settled:  # ack.lua frees its slot now that it has stopped
                self._settle(d, Settlement(Outcome.REQUEUE), count=False)
            return
        runner.ended()
        try:
            settlement = self._outcome(d, policy, run)
        except Exception as exc:  # a bug of ours: never strand the job
            log.exception("job %s: worker error", d.id)
            error = f"{type(exc).__name__}: {exc}"
            settlement = Settlement.failed(error, f"worker error: {error}", traceback.format_exc())
        self._ran(d, settlement, took)

    def _ran(self, d: Delivery, settlement: Settlement, took: float | None) -> None:
        """An attempt has ended here, under its task (``Worker._execute``) or directly:
        settle ``d`` with what the run meant, unless it was settled meanwhile. An aborted
        job's outcome is not counted (its abort was)."""
        if d.settled:
            return
        if d.aborted:
            self._settle(d, settlement, count=False)
            return
        if self._timed:
            self._metric(self.metrics.duration, d.job.queue.name, d.task_name).observe(took or 0.0)
        self._settle(d, settlement)

    @staticmethod
    def _outcome(d: Delivery, policy: RetryPolicy, run: Run) -> Settlement:
        """What the run's end means for the job."""
        if run.skipped:  # the lane closed before a thread took it: it never ran
            return Settlement(Outcome.REQUEUE)
        raised: BaseException
        if run.ok:
            try:
                return finished(d.task_name, run.value)
            except TypeError as exc:  # a result that is not JSON
                raised = exc
        else:
            raised = run.value
        return failure(d, policy, raised, "".join(traceback.format_exception(raised)))

    def _start_waiting(self) -> None:
        raise NotImplementedError  # loop.py
