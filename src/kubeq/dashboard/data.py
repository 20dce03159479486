"""Paged reads for the Queue (its waiting and sleeping jobs), Job and Dead letters pages.

Every read is bounded: a page of ids from a ZRANGE with limits and the matching job hashes in
one pipeline, never a whole queue. A dead-letter filter (task, reason) examines at most
``DASHBOARD_SCAN_LIMIT`` entries per page and hands back a cursor to go on from. Job details
and actions go through the library (``Job.info``, ``Queue.requeue_dead`` ...), so the
dashboard shows exactly what the API would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from kubeq import defaults, serialization
from kubeq.client.app import App
from kubeq.store.fairness import FairStats, read_fair_stats
from kubeq.store.jobfields import JOB_FIELDS, LISTING_FIELDS, JobInfo, attempts_of, text, whole
from kubeq.store.keys import QueueKeys, queues_key, split_ready_score, validate_job_id


@dataclass
class Row:
    """One job as a list row: id, task, a short form of its arguments, and its state."""

    id: str
    task: str
    args: str
    status: str
    attempts: int
    score_time: float
    """Ready time (waiting jobs) or time of death (dead letters), Unix seconds."""
    priority: int = 0
    reason: str = ""
    error: str = ""


@dataclass
class Sleeper:
    """A sleeping job as a list row: what it waits for and until when."""

    id: str
    task: str
    args: str
    wait_step: str
    """Its sleep's or wait's record name (``~sleep:1``, ``~wait:<key>``)."""
    waiting_for: str
    """The signal key it waits for; "" for a sleep."""
    until: float | None
    """When it wakes (a sleep's end, a wait's timeout), Unix seconds; None: only a signal."""


def describe_payload(payload: str, limit: int = 200) -> tuple[str, str]:
    """(task, arguments as short text) of a stored payload; never raises."""
    try:
        body = serialization.loads(payload)
        task = str(body.get("task", "?"))
        parts = [serialization.dumps(a).decode() for a in body.get("args", [])]
        parts += [
            f"{k}={serialization.dumps(v).decode()}" for k, v in body.get("kwargs", {}).items()
        ]
        text = ", ".join(parts)
    except (ValueError, AttributeError, TypeError):
        return "?", payload[:limit]
    return task, text if len(text) <= limit else text[: limit - 1] + "…"


def _pairs(raw: Any) -> list[tuple[str, float]]:
    """ZRANGE ... WITHSCORES as (member, score) pairs, typed."""
    return [(text(m), float(sc)) for m, sc in raw]


def _row(job_id: str, score: float, values: list[Any], *, dead: bool) -> Row:
    f = dict(zip(LISTING_FIELDS, values, strict=True))
    task, args = describe_payload(text(f["payload"]))
    if dead:
        priority, when = whole(f["priority"], defaults.PRIORITY), score / 1000
    else:
        priority, when_ms = split_ready_score(score)
        when = when_ms / 1000
    status = text(f["status"]) or "unknown"
    return Row(
        id=job_id,
        task=task,
        args=args,
        status=status,
        attempts=attempts_of(status, f["attempts"]),
        score_time=when,
        priority=priority,
        reason=text(f["reason"]),
        error=text(f["error"]),
    )


class Reader:
    """Bounded reads through the library's sync client (run them off the event loop)."""

    def __init__(self, app: App) -> None:
        self.app = app

    def queue_names(self) -> list[str]:
        # the cast: redis-py before 8.0 types a reply as "T | Awaitable[T]"
        names = cast("set[bytes]", self.app.redis.smembers(queues_key(self.app.prefix)))
        return sorted(text(n) for n in names)

    def _hashes(self, keys: QueueKeys, ids: list[str]) -> list[list[Any]]:
        pipe = self.app.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(keys.job(job_id), list(LISTING_FIELDS))
        return list(pipe.execute())

    def fair(self, queue: str) -> FairStats | None:
        """The queue's fairness keys that waited longest, or None when no key has ready jobs."""
        (found,) = read_fair_stats(self.app.redis, [queue], self.app.prefix)
        return found if found.active_keys else None

    def waiting(self, queue: str, page: int, size: int = defaults.DASHBOARD_PAGE_SIZE) -> list[Row]:
        """Page ``page`` (0-based) of the queue's ready jobs, in the order workers fetch them."""
        keys = QueueKeys.of(queue, self.app.prefix)
        start = max(0, page) * size
        pairs = _pairs(self.app.redis.zrange(keys.ready, start, start + size - 1, withscores=True))
        ids = [m for m, _ in pairs]
        return [
            _row(i, s, v, dead=False)
            for i, (_, s), v in zip(ids, pairs, self._hashes(keys, ids), strict=True)
        ]

    def sleeping(self, queue: str, size: int = defaults.DASHBOARD_PAGE_SIZE) -> list[Sleeper]:
        """The first ``size`` of the queue's sleeping jobs (durable sleeps and waits), the
        soonest to wake first (waits without a timeout last)."""
        keys = QueueKeys.of(queue, self.app.prefix)
        ids = [
            text(m) for m in cast("list[Any]", self.app.redis.zrange(keys.sleeping, 0, size - 1))
        ]
        pipe = self.app.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(keys.job(job_id), list(JOB_FIELDS))
        infos = [JobInfo.from_fields(i, queue, v) for i, v in zip(ids, pipe.execute(), strict=True)]
        return [
            Sleeper(i.id, *describe_payload(i.payload), i.wait_step, i.waiting_for, i.sleep_until)
            for i in infos
            if i.status == "sleeping"  # woken since the ZRANGE
        ]

    def dead(
        self,
        queue: str,
        cursor: int = 0,
        task: str = "",
        reason: str = "",
        size: int = defaults.DASHBOARD_PAGE_SIZE,
        scan_limit: int = defaults.DASHBOARD_SCAN_LIMIT,
    ) -> tuple[list[Row], int | None]:
        """Dead letters, newest first, from position ``cursor``; rows and the next cursor.

        With a ``task`` (exact) or ``reason`` (substring of reason or error) filter, at most
        ``scan_limit`` entries are examined; the next cursor says where to go on.
        """
        keys = QueueKeys.of(queue, self.app.prefix)
        rows: list[Row] = []
        pos = max(0, cursor)
        chunk = size if not (task or reason) else 500
        examined = 0
        while len(rows) < size and examined < scan_limit:
            pairs = _pairs(
                self.app.redis.zrevrange(keys.dead, pos, pos + chunk - 1, withscores=True)
            )
            if not pairs:
                return rows, None
            ids = [m for m, _ in pairs]
            for i, (job_id, (_, score), values) in enumerate(
                zip(ids, pairs, self._hashes(keys, ids), strict=True)
            ):
                row = _row(job_id, score, values, dead=True)
                if _matches(row, task, reason):
                    rows.append(row)
                    if len(rows) == size:
                        return rows, pos + i + 1
            pos += len(pairs)
            examined += len(pairs)
        return rows, pos

    def matching_dead_ids(self, queue: str, task: str, reason: str) -> list[str]:
        """Every dead-letter id matching the filter (for "requeue all matching"), in chunks."""
        keys = QueueKeys.of(queue, self.app.prefix)
        out: list[str] = []
        pos = 0
        while True:
            pairs = _pairs(self.app.redis.zrevrange(keys.dead, pos, pos + 499, withscores=True))
            if not pairs:
                return out
            ids = [m for m, _ in pairs]
            for job_id, (_, score), values in zip(ids, pairs, self._hashes(keys, ids), strict=True):
                if _matches(_row(job_id, score, values, dead=True), task, reason):
                    out.append(job_id)
            pos += len(pairs)

    def find(self, job_id: str, queue: str = "") -> JobInfo | None:
        """The job with this id, in ``queue`` or else in whichever queue holds it."""
        validate_job_id(job_id)
        names = [queue] if queue else self.queue_names()
        pipe = self.app.redis.pipeline(transaction=False)
        for name in names:
            pipe.exists(QueueKeys.of(name, self.app.prefix).job(job_id))
        for name, found in zip(names, pipe.execute(), strict=True):
            if found:
                return self.app.job(job_id, queue=name).info()
        return None


def _matches(row: Row, task: str, reason: str) -> bool:
    if task and row.task != task:
        return False
    return not reason or reason.lower() in (row.reason + " " + row.error).lower()


@dataclass
class JobView:
    """What the Job page shows, with the long parts cut (the full text is a download)."""

    info: JobInfo
    task: str
    args: list[str] = field(default_factory=list)
    kwargs: list[tuple[str, str]] = field(default_factory=list)
    options: str = ""
    result: str = ""
    result_cut: bool = False
    steps: list[tuple[str, str]] = field(default_factory=list)
    """Its recorded durable steps (name, JSON cut to the limit): docs/durable.md."""


def job_view(
    info: JobInfo,
    limit: int = defaults.DASHBOARD_RESULT_CHARS,
    steps: dict[str, Any] | None = None,
) -> JobView:
    """Split a job's payload into arguments for display; plain text only (escaped later)."""
    view = JobView(info=info, task=info.task)
    try:
        task, args, kwargs, options = serialization.decode_call(info.payload)
        view.task = task
        view.args = [serialization.dumps(a).decode()[:limit] for a in args]
        view.kwargs = [(k, serialization.dumps(v).decode()[:limit]) for k, v in kwargs.items()]
        view.options = serialization.dumps(options).decode() if options else ""
    except (ValueError, TypeError):
        view.args = [info.payload[:limit]]
    view.result = info.result[:limit]
    view.result_cut = len(info.result) > limit
    view.steps = [(k, serialization.dumps(v).decode()[:limit]) for k, v in (steps or {}).items()]
    return view
