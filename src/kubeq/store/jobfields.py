"""The job hash as readers see it: the fields each reader asks for, how a stored value is
read back (text, a time, a whole number, JSON) and ``JobInfo``, the snapshot of one job.

Writers are the Lua scripts (``lua/*.lua``); every Python reader of a job hash takes its field
names and its decoding from here. The layout is in ``keys.py`` (``kubeq:{queue}:job:<id>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kubeq import defaults, serialization
from kubeq.store.keys import pin_of

Status = Literal[
    "queued",
    "scheduled",
    "waiting",
    "deferred",
    "sleeping",
    "batched",
    "active",
    "finished",
    "failed",
    "cancelled",
    "aborted",
    "expired",
    "unknown",
]
"""queued: waiting in the ready set. scheduled: waiting for its time (delay, eta, retry, or
its rate limit's next start). waiting: for a concurrency slot of its limit key.
deferred: for its parents (depends_on) to end. sleeping: in a durable sleep or wait
(kubeq.sleep, kubeq.wait_for): it holds no worker until its time or its signal comes.
batched: an item of a batch task, in its batch (field batch: the batch's job) until the batch
runs and settles it (docs/patterns.md).
active: leased by a worker. finished: has a result. failed: in the dead-letter queue.
cancelled: cancelled before it ran. aborted: stopped by job.abort(). expired: not started by
its expiry time. unknown: never enqueued, or its result TTL passed."""

JOB_FIELDS = (
    "status",
    "payload",
    "priority",
    "enqueued_at",
    "started_at",
    "finished_at",
    "attempts",
    "deliveries",
    "worker",
    "result",
    "error",
    "reason",
    "traceback",
    "progress",
    "meta",
    "wait_step",
    "sleep_until",
    "signal",
    "flow",
    "flow_mode",
    "flow_joined",
    "batch",
)

"""Every field of a ``JobInfo``, in the order ``JobInfo.from_fields`` takes them."""

RESULT_FIELDS = ["status", "result", "error", "reason", "traceback"]
"""What ``Job.result`` reads: how the job ended and what it returned or raised."""

LISTING_FIELDS = ("status", "payload", "priority", "enqueued_at", "attempts", "error", "reason")
"""What the dashboard shows of each job in a queue's listing."""

HANDOFF_FIELDS = [
    "status",
    "result",
    "error",
    "reason",
    "on_success",
    "on_failure",
    "cb",
    "finished_at",
]
"""What the worker's hand-off reads of an ended job to enqueue its callback (``finished_at``
names the end whose callback it is: its enqueue's send token)."""


def text(value: bytes | str | None) -> str:
    """A stored string (bytes decoded, undecodable bytes replaced); "" when absent."""
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def ms(value: bytes | str | None) -> float | None:
    """Milliseconds since the epoch as seconds; None when absent or malformed."""
    number = whole(value, None)
    return number / 1000 if number else None


def whole(value: bytes | str | None, default: int | None = 0) -> Any:
    """A stored whole number; ``default`` when absent or malformed (a job written by hand
    must not stop a listing of every other job)."""
    try:
        return int(value) if value else default
    except (TypeError, ValueError):
        return default


def ran_once(status: str, attempts: bytes | str | None) -> bool:
    """Whether a job record is a finished job that ran once on its first delivery: ack.lua
    keeps neither count for that usual end, so such a record has no ``attempts`` (every
    other finished job has one)."""
    return status == "finished" and not attempts


def attempts_of(status: str, value: bytes | str | None) -> int:
    """A job's attempts: 1 for a finished job without the field (``ran_once``), else the
    stored number (0 when absent: not run yet)."""
    return 1 if ran_once(status, value) else int(whole(value))


def stored_json(value: bytes | str | None, default: Any) -> Any:
    """Stored JSON decoded; ``default`` when absent or malformed (written by hand)."""
    if not value:
        return default
    try:
        decoded = serialization.loads(value)
    except ValueError:
        return default
    if isinstance(default, dict) and not isinstance(decoded, dict):
        return default
    return decoded


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of one job's state, as stored in Redis. Times are Unix seconds."""

    id: str
    queue: str
    status: Status
    task: str
    payload: str
    priority: int
    enqueued_at: float | None
    started_at: float | None
    finished_at: float | None
    attempts: int
    deliveries: int
    worker: str
    error: str
    reason: str
    traceback: str
    result: str
    progress: Any = None
    """What the task last passed to ``current_job().set_progress`` (decoded JSON), or None."""
    meta: dict[str, Any] = field(default_factory=dict)
    """What the task stored with ``current_job().update_meta`` (decoded JSON)."""
    wait_step: str = ""
    """The durable sleep or wait the job is in (``~sleep:1``, ``~wait:<key>``), or was in last."""
    sleep_until: float | None = None
    """While sleeping: when it continues (a sleep) or times out (a wait); None for a wait
    without timeout."""
    waiting_for: str = ""
    """While sleeping on ``kubeq.wait_for``: the signal key it waits for."""
    flow: str = ""
    """A debounced or singleton job's key (``<task>:<key>``; docs/patterns.md), else ""."""
    flow_mode: str = ""
    """``debounce`` or the singleton mode that made the job."""
    flow_joined: int = 0
    """How many later calls joined this job (their handles name it; the last one's
    arguments are its own)."""
    batch: str = ""
    """A batch task's item: the id of its batch job (docs/patterns.md), else ""."""
    pinned_version: str = ""
    """The worker version the job is pinned to (its queue is ``<queue>~<version>``), else ""."""

    @classmethod
    def from_fields(cls, job_id: str, queue: str, values: Sequence[Any]) -> JobInfo:
        f = dict(zip(JOB_FIELDS, values, strict=True))
        payload = text(f["payload"])
        try:
            task = str(serialization.loads(payload).get("task", "?"))
        except (ValueError, AttributeError):
            task = "?"
        status = text(f["status"]) or "unknown"
        return cls(
            id=job_id,
            queue=queue,
            status=status,  # type: ignore[arg-type]
            task=task,
            payload=payload,
            priority=whole(f["priority"], defaults.PRIORITY),  # absent: the default
            enqueued_at=ms(f["enqueued_at"]),
            started_at=ms(f["started_at"]),
            finished_at=ms(f["finished_at"]),
            attempts=attempts_of(status, f["attempts"]),
            deliveries=1 if ran_once(status, f["attempts"]) else whole(f["deliveries"]),
            worker=text(f["worker"]),
            error=text(f["error"]),
            reason=text(f["reason"]),
            traceback=text(f["traceback"]),
            # a finished job stores no result when it returned null (ack.lua)
            result=text(f["result"]) or ("null" if status == "finished" else ""),
            progress=stored_json(f["progress"], None),
            meta=stored_json(f["meta"], {}),
            wait_step=text(f["wait_step"]),
            sleep_until=ms(f["sleep_until"]) if status == "sleeping" else None,
            waiting_for=text(f["signal"]) if status == "sleeping" else "",
            flow=text(f["flow"]),
            flow_mode=text(f["flow_mode"]),
            flow_joined=whole(f["flow_joined"]),
            batch=text(f["batch"]),
            pinned_version=pin_of(queue) or "",
        )
