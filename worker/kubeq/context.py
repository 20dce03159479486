"""``kubeq.current_job()``: what a running task can know about its own job, and ask of it.

The worker sets a ``JobContext`` around each attempt in a context variable, so the same call
works in every pool: an ``async def`` task reads the one set in its asyncio task, a thread
task the one set in its pool thread, and a process task a copy rebuilt in its pool child.
It exists so a task can cooperate with execution control (docs/architecture.md, Execution
control): a thread task, which Python cannot interrupt, polls ``.aborted`` or calls
``.check()`` to stop when its job is aborted or passes its soft timeout.

Kept minimal and in its own module on purpose: workflows (issue 11) extend it with the
job's meta and progress reporting.
"""

from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass, field

from .errors import JobAborted, SoftTimeLimitExceeded

__all__ = ["JobContext", "current_job"]


@dataclass
class JobContext:
    """The job a task is running as. Times are ``time.monotonic()`` of this process."""

    id: str
    task: str
    queue: str
    attempt: int
    """1 for the first execution, 2 for the first retry..."""
    max_attempts: int
    deadline: float | None = None
    """When the hard ``timeout`` stops this attempt (monotonic), or None."""
    soft_deadline: float | None = None
    """When ``SoftTimeLimitExceeded`` is due (monotonic), or None."""
    _abort: threading.Event = field(default_factory=threading.Event, repr=False)
    _soft_raised: bool = field(default=False, repr=False)

    @property
    def aborted(self) -> bool:
        """True once the job was aborted (``job.abort()``); the task should stop."""
        return self._abort.is_set()

    def abort(self) -> None:
        """Called by the worker when the abort reaches it (on a heartbeat reply)."""
        self._abort.set()

    def start_clock(self, timeout: float | None, soft_timeout: float | None) -> None:
        """Start the deadlines when the attempt really starts (a thread or child took it)."""
        now = time.monotonic()
        self.deadline = None if timeout is None else now + timeout
        self.soft_deadline = None if soft_timeout is None else now + soft_timeout

    def check(self) -> None:
        """Raise ``JobAborted`` when the job was aborted, or ``SoftTimeLimitExceeded`` (once)
        when the soft timeout has passed; otherwise return at once. Cheap: call it often."""
        if self._abort.is_set():
            raise JobAborted(f"job {self.id} was aborted")
        if (
            self.soft_deadline is not None
            and not self._soft_raised
            and time.monotonic() >= self.soft_deadline
        ):
            self._soft_raised = True
            raise SoftTimeLimitExceeded(f"job {self.id} ran past its soft timeout")

    def __getstate__(self) -> dict[str, object]:
        """Picklable for a process-pool child (an abort there stops the child instead)."""
        state = dict(self.__dict__)
        state["_abort"] = None
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._abort = threading.Event()


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "kubeq_current_job", default=None
)


def current_job() -> JobContext:
    """The job the calling task runs as; RuntimeError outside a kubeq worker's task."""
    job = _current.get()
    if job is None:
        raise RuntimeError(
            "kubeq.current_job() is only available inside a task run by a kubeq worker"
        )
    return job


def set_current(job: JobContext | None) -> contextvars.Token[JobContext | None]:
    """Make ``job`` the current job of this context (the worker's side)."""
    return _current.set(job)


def reset_current(token: contextvars.Token[JobContext | None]) -> None:
    _current.reset(token)
