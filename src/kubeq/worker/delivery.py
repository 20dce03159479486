"""One leased job inside a worker, and how one attempt of it turns into a ``Settlement``.

``run_attempt`` is the whole life of an attempt between fetch and ack: decode the JSON
payload, find the task in the registry (only registered tasks run), apply the call's
overrides, run it through the ``Executor``, encode the result, and map whatever happened to
an outcome (``retry.decide`` for failures). It never raises except for the drain's hand-back
cancellation, so a job is never stranded "active" by a bug or a task's odd exception.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from dataclasses import dataclass
from typing import Any

from kubeq import serialization
from kubeq.checks import check_timeout
from kubeq.client.app import Task
from kubeq.client.context import JobContext, reset_current, set_current
from kubeq.errors import JobSuspended
from kubeq.options import apply_retry_overrides
from kubeq.outcomes import Ended, Outcome, Settlement
from kubeq.retry import RetryPolicy, decide
from kubeq.store.cluster import is_outage
from kubeq.store.wire import FetchedJob
from kubeq.worker import batches
from kubeq.worker.execution import Executor, ProcessDied
from kubeq.worker.threads import Run
from kubeq.workflows.chords import ChordResultLost, chord_results

log = logging.getLogger("kubeq.worker")


@dataclass(slots=True)
class Delivery:
    """One job leased to this worker, with the state the loop keeps about it."""

    job: FetchedJob
    task_name: str = "?"
    runner: asyncio.Future[None] | None = None
    """What runs its attempt: its asyncio task, or its ``DirectRun`` (direct.py)."""
    settled: bool = False
    """An outcome has been queued; nothing else may settle this delivery."""
    lost: bool = False
    """This worker no longer holds the job (delivered again, or ended): the run is stopped."""
    handed_back: bool = False
    """Cancelled by the drain to be re-queued (any other cancellation is a failure)."""
    aborted: bool = False
    """Aborted (job.abort()): abort.lua recorded its end; the attempt is being stopped."""
    context: JobContext | None = None
    """What the task sees as ``kubeq.current_job()``."""
    thread: asyncio.Future[None] | None = None
    """A thread that runs on after its attempt was stopped: done when it returns."""
    call: tuple[str, list[Any], dict[str, Any], dict[str, Any]] | None = None
    """Its payload decoded when it was leased (``decode_call``), if it was."""
    for_lane: bool = False
    """A sync task's job that may wait for its slot in the thread lane (``WorkerState``)."""
    queued: bool = False
    """Started before a slot was free: its sync task waits in the thread lane for one."""
    reserved: bool = False
    """It holds a slot taken by ``Executor.reserve`` (given back when its attempt ends)."""
    lane: Run | None = None
    """Its run in the thread lane, once queued there (until its attempt ends)."""
    entered: bool = False
    """Its asyncio task has begun (``Worker._execute``): a queued job then submits its run
    in the same step, or has ended without one."""

    @property
    def waiting(self) -> bool:
        """Handed to the thread lane and not taken by a thread yet: it may be withdrawn."""
        if self.settled or not self.queued:
            return False
        if self.lane is None:
            return not self.entered
        return not self.lane.claimed

    @property
    def begun(self) -> bool:
        """Its attempt holds a slot and has begun (not only queued for one)."""
        if self.runner is None:
            return False
        if not self.queued:
            return True
        lane = self.lane
        return lane is not None and lane.claimed and not lane.skipped

    def ran_for(self, started: float, now: float) -> float | None:
        """Seconds its attempt ran (from its start in a slot), None if it never began.
        ``started``: when its asyncio task started; ``now``: its end (``time.monotonic``)."""
        lane = self.lane
        if lane is None:
            return None if self.queued else now - started
        if lane.skipped or not lane.began:
            return None
        return (lane.ended or now) - lane.began

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def key(self) -> tuple[str, str]:
        """The in-flight key: queue and job id."""
        return (self.job.queue.name, self.job.id)


async def run_attempt(
    d: Delivery,
    tasks: dict[str, Task[Any, Any]],
    executor: Executor,
    redis_url: str | None = None,
) -> Settlement:
    """Run the job once; returns how it ended. ``redis_url`` is where the task's progress and
    meta writes go (``kubeq.current_job()``); None keeps them in memory."""
    try:
        name, args, kwargs, options = d.call or serialization.decode_call(d.job.payload)
    except ValueError as exc:
        log.error("job %s dead-lettered: %s", d.id, exc)
        return Settlement.failed(str(exc))
    d.call = None
    d.task_name = name
    task = tasks.get(name)
    if task is None:
        reason = (
            f"unknown task {name!r}: this worker runs only the tasks registered by module "
            f"{executor.tasks_module!r} ({', '.join(sorted(tasks))})"
        )
        log.error("job %s dead-lettered: %s", d.id, reason)
        return Settlement.failed(reason)
    try:
        policy = (
            apply_retry_overrides(task.options.retry, options) if options else task.options.retry
        )
        timeout = check_timeout(options.get("timeout", task.options.timeout), "options.timeout")
        soft = options.get("soft_timeout", task.options.soft_timeout)
        soft_timeout = check_timeout(soft, "options.soft_timeout")
    except (TypeError, ValueError) as exc:
        return Settlement.failed(f"malformed payload: bad options ({exc})")
    members = options.get("chord_of")
    if members is not None and redis_url is not None:
        try:
            results = await asyncio.to_thread(
                chord_results, redis_url, d.job.queue.prefix, members, d.job.queue.job(d.id)
            )
        except ChordResultLost as exc:
            return Settlement.failed(f"ChordResultLost: {exc}")
        except (TypeError, ValueError) as exc:
            return Settlement.failed(f"malformed payload: bad chord_of ({exc})")
        except Exception as exc:  # Redis unreachable: not the task's failure, never poison
            if not is_outage(exc):
                raise
            error, tb = f"{type(exc).__name__}: {exc}", traceback.format_exc()
            log.warning("job %s: its chord's results could not be read: %s", d.id, error)
            if d.job.attempts + 1 < policy.max_attempts:
                return Settlement.retry(error, tb, policy.delay(d.job.attempts + 1))
            return Settlement(Outcome.REQUEUE, error, tb)  # handed back: no attempt counted
        args = [results, *args]
    run: batches.BatchRun | None = None
    lone = task.options.batch is not None and not options.get("batch")
    if task.options.batch is not None and options.get("batch") and redis_url is not None:
        # a batch: its items, read where batch.lua formed it (docs/patterns.md)
        try:
            run = await asyncio.to_thread(batches.read_items, redis_url, d.job.queue, d.id)
        except Exception as exc:  # Redis unreachable: not the task's failure, never poison
            if not is_outage(exc):
                raise
            error = f"{type(exc).__name__}: {exc}"
            log.warning("job %s: its batch's items could not be read: %s", d.id, error)
            return Settlement(Outcome.REQUEUE, error, traceback.format_exc())
        if run.bad:  # malformed items: dead-lettered with the reason, the others run
            await asyncio.to_thread(
                batches.settle_items, redis_url, d.job.queue, d.id, d.job.lease, run.bad
            )
        if not run.ids:  # every item was settled by a run before a crash: nothing to redo
            return batches.summary(run, 0)
        args, kwargs = [run.items], {}
    elif lone:  # one item run on its own (a requeued dead letter, eager mode)
        args = [args[:1]]
    ctx = d.context = job_context(
        d, name, policy.max_attempts, redis_url, tuple(run.ids) if run is not None else ()
    )
    token = set_current(ctx)  # this asyncio task's context: async tasks see it
    try:
        result = await executor.invoke(
            task,
            args,
            kwargs,
            timeout,
            ctx,
            soft_timeout,
            lambda t: setattr(d, "thread", t),
            lambda r: setattr(d, "lane", r),
            d.reserved,
        )
        if lone:
            result = batches.lone_item(result)
        if run is not None and redis_url is not None:
            try:
                fields, failed = batches.item_outcomes(run, result, policy)
            except TypeError as exc:
                fields, failed = batches.all_failed(run, Settlement.failed(str(exc))), len(run.ids)
            await asyncio.to_thread(
                batches.settle_items, redis_url, d.job.queue, d.id, d.job.lease, fields
            )
            return batches.summary(run, failed)
        return finished(name, result)
    except asyncio.CancelledError as exc:
        if d.handed_back or d.aborted or d.lost:
            raise
        return failure(d, policy, exc, traceback.format_exc())
    except BaseException as exc:  # a task's SystemExit must not stop the worker
        settlement = failure(d, policy, exc, traceback.format_exc())
        if settlement.outcome is Outcome.FAILED and run is not None and redis_url is not None:
            fields = batches.all_failed(run, settlement)  # its items go with it
            await asyncio.to_thread(
                batches.settle_items, redis_url, d.job.queue, d.id, d.job.lease, fields
            )
        return settlement
    finally:
        reset_current(token)  # the caller's context is as it was (eager mode runs here)


def job_context(
    d: Delivery,
    name: str,
    max_attempts: int,
    redis_url: str | None,
    batch_items: tuple[str, ...] = (),
) -> JobContext:
    """What the attempt of ``d`` about to run sees as ``kubeq.current_job()``."""
    return JobContext(
        d.id,
        name,
        d.job.queue.name,
        d.job.attempts + 1,
        max_attempts,
        lease=d.job.lease,
        base=d.job.queue.base if redis_url is not None else "",
        redis_url=redis_url,
        batch_items=batch_items,
    )


_RETURNED_NONE = Settlement.finished(serialization.dumps(None))
"""The outcome of an attempt that returned None, the most common result (immutable: shared)."""


def finished(name: str, result: Any) -> Settlement:
    """The outcome of an attempt of task ``name`` that returned ``result``; raises TypeError,
    naming the task, when the result is not JSON."""
    if result is None:
        return _RETURNED_NONE
    try:
        return Settlement.finished(serialization.dumps(result))
    except TypeError as exc:
        raise TypeError(
            f"task {name!r} returned a {type(result).__name__}, which is not "
            f"JSON-serializable ({exc}); return JSON types"
        ) from None


def failure(d: Delivery, policy: RetryPolicy, exc: BaseException, tb: str) -> Settlement:
    """The outcome of an attempt of ``d`` that raised ``exc`` (with traceback ``tb``): a
    suspension, a release when its process died, else a retry or a dead letter
    (``retry.decide``), logged."""
    attempt, name = d.job.attempts + 1, d.task_name
    if isinstance(exc, asyncio.CancelledError):
        # a task's own cancellation (an inner task it awaited was cancelled) is a failure
        error = "CancelledError: the task was cancelled"
        return Settlement.failed(error, f"{error} (not retried)", tb)
    if isinstance(exc, JobSuspended):
        log.info("job %s (%s): %s", d.id, name, exc.what)
        return Settlement(Ended.SUSPENDED)
    if isinstance(exc, ProcessDied):
        # its pool child died under it: no attempt counted, but a lost delivery, so a job that
        # kills its process every time is buried as poison after max_deliveries
        log.error("job %s (%s): its process died; released to run again", d.id, name)
        return Settlement(Outcome.RELEASE, f"ProcessDied: {exc}", tb)
    settlement = decide(policy, attempt, exc, tb)
    if settlement.outcome is Outcome.RETRY:
        log.warning(
            "job %s (%s) attempt %d failed, retry in %.1f s: %s",
            d.id,
            name,
            attempt,
            settlement.retry_delay_ms / 1000,
            settlement.value,
        )
    else:
        log.error("job %s (%s) dead-lettered: %s", d.id, name, settlement.reason)
    return settlement
