"""Exceptions users catch or raise: one module so `except kubeq.X` is easy to find."""

from __future__ import annotations

from datetime import timedelta


class KubeqError(Exception):
    """Base class of every kubeq error."""


class SerializationError(KubeqError, TypeError):
    """A task argument or result is not JSON-serializable. Raised in the caller at enqueue."""


class JobFailed(KubeqError):
    """The job ended in the dead-letter queue; ``error``, ``reason`` and ``traceback`` say why."""

    def __init__(self, job_id: str, reason: str, error: str, traceback: str) -> None:
        super().__init__(f"job {job_id} failed: {reason}")
        self.job_id = job_id
        self.reason = reason
        self.error = error
        self.traceback = traceback


class JobCancelled(KubeqError):
    """The job was cancelled before it ran."""


class JobAborted(KubeqError):
    """The job was aborted (``job.abort()``, ``kubeq job abort``). Raised by
    ``kubeq.current_job().check()`` inside a running task, and by ``job.result()``."""


class JobExpired(KubeqError):
    """The job did not start before its ``expires`` time, so it never ran."""


class SoftTimeLimitExceeded(KubeqError):
    """Raised inside a task that ran past its ``soft_timeout``, so it can clean up before the
    hard ``timeout`` stops it. Async tasks see a cancellation at that moment, thread tasks
    this exception at their next ``current_job().check()``, process tasks this exception
    raised by a signal in their child."""


class LeaseLost(KubeqError):
    """A running task's progress or meta write was refused: its attempt no longer holds the
    job (the lease was taken over by another worker after this one stalled, or the job was
    aborted or ended). The task should stop; its result would be refused too."""


class StepTooLarge(KubeqError, ValueError):
    """A durable step's record (or a job's step records together) would pass
    ``defaults.MAX_STEP_BYTES`` / ``defaults.MAX_STEPS_BYTES``: record a reference (an object
    key, a row id) instead of the data."""


class WaitTimeout(KubeqError, TimeoutError):
    """``kubeq.wait_for(key, timeout=...)`` resumed because no signal came in time. The task
    may catch it and go on (the timeout is recorded: a later run sees it again)."""

    def __init__(self, key: str, step: str) -> None:
        super().__init__(f"no signal {key!r} came before the wait {step!r} timed out")
        self.key = key
        self.step = step

    def __reduce__(self) -> tuple[type[WaitTimeout], tuple[str, str]]:
        return (WaitTimeout, (self.key, self.step))


class JobSuspended(BaseException):
    """Raised by ``kubeq.sleep`` and ``kubeq.wait_for`` after the job was suspended in Redis:
    it ends this run (the worker frees the slot; nothing is retried). A BaseException, so an
    ``except Exception`` in the task does not swallow it; do not catch it."""

    def __init__(self, job_id: str, what: str) -> None:
        super().__init__(f"job {job_id} suspended: {what}")
        self.job_id = job_id
        self.what = what

    def __reduce__(self) -> tuple[type[JobSuspended], tuple[str, str]]:
        return (JobSuspended, (self.job_id, self.what))


class JobNotFound(KubeqError):
    """No such job: never enqueued, or its result TTL has passed."""


class NotReplicated(KubeqError):
    """Enqueued on the master, but fewer replicas than ``wait_replicas`` confirmed the jobs in
    time: they would be lost if the master failed before replicating them."""


class ResultTimeout(KubeqError, TimeoutError):
    """``job.result(timeout=...)`` waited that long and the job had not ended."""


class Retry(Exception):
    """Raise from inside a task to run it again later.

    The attempt counts toward the task's ``max_attempts`` (so a task cannot loop forever);
    ``delay`` in seconds overrides the backoff policy for this one retry.
    """

    def __init__(self, delay: float | timedelta | None = None, reason: str = "") -> None:
        super().__init__(reason or "retry requested by the task")
        if isinstance(delay, timedelta):
            delay = delay.total_seconds()
        if delay is not None:
            delay = float(delay)
            if not 0 <= delay <= 365 * 86_400:
                raise ValueError(f"Retry(delay=...) must be 0 to 365 days in seconds, got {delay}")
        self.delay = delay
        self.reason = reason
