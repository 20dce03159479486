"""``kubeq.current_job()``: what a running task can know about its own job, and ask of it.

The worker sets a ``JobContext`` around each attempt in a context variable, so the same call
works in every pool: an ``async def`` task reads the one set in its asyncio task, a thread
task the one set in its pool thread, and a process task a copy rebuilt in its pool child.
It exists so a task can cooperate with execution control (docs/architecture.md, Execution
control): a thread task, which Python cannot interrupt, polls ``.aborted`` or calls
``.check()`` to stop when its job is aborted or passes its soft timeout.

Progress and meta: ``set_progress(value)`` and ``update_meta(**fields)`` store
JSON in the job's hash through ``progress.lua``, fenced by the attempt's lease token, so a
zombie (a worker that stalled past its lease while another took the job over) cannot
overwrite what the live attempt reports; the zombie gets ``LeaseLost``. The context carries
only plain data (Redis URL, key base, token), so a process-pool child writes with its own
connection. Writes are synchronous, one round trip each: an ``async def`` task blocks its
loop for that round trip, so report progress at a human pace (every second or so), not per
item of a tight loop. A context without a Redis URL keeps the values in memory (a unit test
or an eager run).
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any, Literal, cast, overload

from kubeq import defaults, serialization
from kubeq.errors import JobAborted, LeaseLost, SoftTimeLimitExceeded
from kubeq.store import connections
from kubeq.store.scripts import LUA, run_pipeline

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
    lease: str = field(default="", repr=False)
    """The attempt's lease token: fences its progress and meta writes."""
    base: str = field(default="", repr=False)
    """The key base of the job's queue (``kubeq:{default}:``); empty when not connected."""
    redis_url: str | None = field(default=None, repr=False)
    _aborted: bool = field(default=False, repr=False)
    """Set by the worker's loop, read by the task's thread (a bool: no lock per job)."""
    _soft_raised: bool = field(default=False, repr=False)
    _meta: dict[str, Any] | None = field(default=None, repr=False)
    durable: dict[str, Any] = field(default_factory=dict, repr=False)
    """This run's count of durable sleeps and waits, and steps kept without Redis
    (client/durable.py)."""
    progress: Any = field(default=None, repr=False)
    """The last value this attempt stored with ``set_progress`` (None before any)."""
    batch_items: tuple[str, ...] = field(default=(), repr=False)
    """A batch's run: the job ids of its items, in the order of the task's list."""

    @property
    def meta(self) -> dict[str, Any]:
        """The job's meta: what ``update_meta`` stored, by this attempt or an earlier one of the
        same job (read from Redis on first use). A copy: change it with ``update_meta``."""
        if self._meta is None:
            self._meta = self._stored_meta()
        return dict(self._meta)

    def update_meta(self, **fields: Any) -> None:
        """Merge ``fields`` into the job's meta and store it, so the caller sees it in
        ``job.meta()``. Values must be JSON; the whole meta is capped at
        ``defaults.MAX_PROGRESS_BYTES``. Raises LeaseLost when this attempt no longer holds the
        job."""
        merged = {**self.meta, **fields}
        self._store("meta", merged)
        self._meta = merged

    def set_progress(self, value: Any) -> None:
        """Store ``value`` (any JSON: a percentage, ``{"done": 3, "total": 10}``...) as the job's
        progress, read by ``job.progress()`` and ``kubeq job ID``. Capped at
        ``defaults.MAX_PROGRESS_BYTES``; raises LeaseLost when this attempt no longer holds the
        job."""
        self._store("progress", value)
        self.progress = value

    def _store(self, name: str, value: Any) -> None:
        try:
            text = serialization.dumps(value)
        except TypeError as exc:
            raise TypeError(
                f"the {name} of job {self.id} must be JSON (dict, list, str, number, bool, "
                f"None): {exc}"
            ) from None
        if len(text) > defaults.MAX_PROGRESS_BYTES:
            raise ValueError(
                f"the {name} of job {self.id} is {len(text)} bytes as JSON, over the limit of "
                f"{defaults.MAX_PROGRESS_BYTES} (defaults.MAX_PROGRESS_BYTES): store a summary "
                "(counts, a percentage) and return large data as the task's result"
            )
        if not self.base:
            return  # not connected: kept in memory only
        key = f"{self.base}job:{self.id}"
        args = [self.lease, name, text, defaults.MAX_PROGRESS_BYTES]
        (written,) = run_pipeline(
            connections.shared_client(self.redis_url), [(LUA["progress"], [key], args)]
        )
        if not written:
            raise LeaseLost(
                f"job {self.id}: its {name} was not stored because this attempt no longer "
                "holds the job (its lease was taken over, or it was aborted or has ended)"
            )

    def _stored_meta(self) -> dict[str, Any]:
        if not self.base:
            return {}
        # the cast: redis-py before 8.0 types a reply as "T | Awaitable[T]"
        raw = cast(
            "bytes | None",
            connections.shared_client(self.redis_url).hget(f"{self.base}job:{self.id}", "meta"),
        )
        try:
            meta = serialization.loads(raw) if raw else {}
        except ValueError:
            return {}  # a value written by hand: start afresh rather than fail the task
        return meta if isinstance(meta, dict) else {}

    @property
    def aborted(self) -> bool:
        """True once the job was aborted (``job.abort()``); the task should stop."""
        return self._aborted

    def aborted_items(self) -> list[int]:
        """A batch task's run: the positions, in the list the task got, of the items aborted
        since (``job.abort()`` of an item while its batch runs). The task may skip them; what
        it answers for them is not recorded. Read from Redis at each call; [] outside a
        batch's run."""
        if not self.batch_items or self.redis_url is None:
            return []
        pipe = connections.shared_client(self.redis_url).pipeline(transaction=False)
        for item in self.batch_items:
            pipe.hget(f"{self.base}job:{item}", "status")
        return [i for i, status in enumerate(pipe.execute()) if status == b"aborted"]

    def abort(self) -> None:
        """Called by the worker when the abort reaches it (on a heartbeat reply)."""
        self._aborted = True

    def start_clock(self, timeout: float | None, soft_timeout: float | None) -> None:
        """Start the deadlines when the attempt really starts (a thread or child took it)."""
        now = time.monotonic()
        self.deadline = None if timeout is None else now + timeout
        self.soft_deadline = None if soft_timeout is None else now + soft_timeout

    def check(self) -> None:
        """Raise ``JobAborted`` when the job was aborted, or ``SoftTimeLimitExceeded`` (once)
        when the soft timeout has passed; otherwise return at once. Cheap: call it often."""
        if self._aborted:
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
        state["_aborted"] = False
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "kubeq_current_job", default=None
)


@overload
def current_job() -> JobContext | None: ...


@overload
def current_job(*, required: Literal[True]) -> JobContext: ...


@overload
def current_job(*, required: bool) -> JobContext | None: ...


def current_job(*, required: bool = False) -> JobContext | None:
    """The job the calling task runs as, or None outside a task (like RQ's
    ``get_current_job()``), so a function can tell whether a worker runs it.
    ``required=True`` raises RuntimeError outside a task instead, for code that only makes
    sense in one (and type checkers then see a ``JobContext``, never None)."""
    job = _current.get()
    if job is None and required:
        raise RuntimeError(
            "kubeq.current_job(required=True) is only available inside a task run by a kubeq "
            "worker (or kubeq.testing's eager mode); without required=True it returns None"
        )
    return job


def set_current(job: JobContext | None) -> contextvars.Token[JobContext | None]:
    """Make ``job`` the current job of this context (the worker's side)."""
    return _current.set(job)


def reset_current(token: contextvars.Token[JobContext | None]) -> None:
    _current.reset(token)
