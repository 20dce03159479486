"""Find jobs by status, task, tags and age, and the jobs a bulk action would act on.

Two kinds of sets answer a filter, and neither is a SCAN over the keyspace:

- each live state's own set: ``queued`` the ready set, ``scheduled`` the delayed set,
  ``active`` the active set, ``deferred`` the deferred set, ``sleeping`` the sleeping set,
  ``failed`` the dead letters (a job leaves these when its state changes);
- the search index enqueue.lua writes (``kubeq.store.jobindex``): per task and per tag, a
  list of job ids with their enqueue time, so finished, cancelled, aborted and expired jobs
  are found too, while their records live.

A filter reads the smallest of the sets that could hold its jobs (``LLEN``, or ``ZCOUNT``
over the ``since`` range: cheap), newest first, a page of ids at a time: first the
filter's own fields of each job (status, times, tags), then the whole hash of the
candidates, where every condition is checked again (the task on the payload); until
``limit`` match or ``scan`` entries were looked at. With neither a live status, a task nor a
tag, it merges every task's index. ``since`` is "enqueued within" except for ``failed``
(dead-lettered within).

Index entries go with their jobs: a filter first drops the entries at the old end of each
index it reads whose job record is gone (``jobindex.prune``); enqueue.lua drops entries
older than 7 days and the oldest past 2,000,000 per index, and an index key nobody wrote
for 7 days expires.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from kubeq.store import jobindex
from kubeq.store.backend import Backend
from kubeq.store.jobfields import JOB_FIELDS, JobInfo, stored_json
from kubeq.store.keys import QueueKeys
from kubeq.tags import check_tags

LIVE = ("queued", "scheduled", "active", "deferred", "sleeping", "failed")
ENDED = ("finished", "cancelled", "aborted", "expired")
STATUSES = (*LIVE, *ENDED, "any")
PAGE = 500
_FIELDS = [*JOB_FIELDS, "tags"]
_LIGHT = ["status", "enqueued_at", "finished_at", "tags"]


@dataclass(frozen=True)
class FoundJob(JobInfo):
    """A job a filter matched: its snapshot and its tags."""

    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Found:
    jobs: list[FoundJob]
    looked_at: int
    complete: bool
    """False when ``scan`` entries were read before the sets ended (more may match)."""
    pruned: int = 0
    """Index entries dropped on the way because their job's record was gone."""


def _live_set(keys: QueueKeys, status: str) -> str:
    return {
        "queued": keys.ready,
        "scheduled": keys.delayed,
        "active": keys.active,
        "deferred": keys.deferred,
        "sleeping": keys.sleeping,
        "failed": keys.dead,
    }[status]


@dataclass(frozen=True)
class _Source:
    keys: tuple[str, ...]
    low: str
    """Lowest score read (``-inf``, or the ``since`` floor in ms)."""
    index: bool
    """An index (stale entries are pruned) rather than a state's set."""


def check_filter(status: str | None, tags: object) -> tuple[str, ...]:
    """The tags of a filter, checked, or ValueError naming the bad field."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    return check_tags(tags or (), "tag") if tags else ()


def _sources(
    app: Backend, keys: QueueKeys, status: str, task: str | None, tags: tuple[str, ...], floor: str
) -> _Source:
    """The smallest set that holds every job the filter can match."""
    enq_low = "-inf" if status == "failed" else floor
    options: list[_Source] = []
    if status in LIVE:
        by_time = status in ("failed", "deferred")
        options.append(_Source((_live_set(keys, status),), floor if by_time else "-inf", False))
    if task is not None:
        options.append(_Source((keys.ix_task(task),), enq_low, True))
    options += [_Source((keys.ix_tag(t),), enq_low, True) for t in tags]
    if not options:
        tasks = [t.decode() for t in cast("list[bytes]", app.redis.zrange(keys.ix_tasks, 0, -1))]
        return _Source(tuple(keys.ix_task(t) for t in tasks), enq_low, True)
    pipe = app.redis.pipeline(transaction=False)
    for s in options:
        if s.index:
            pipe.llen(s.keys[0])
        else:
            pipe.zcount(s.keys[0], s.low, "+inf")
    counts = pipe.execute()
    return min(zip(counts, range(len(options)), options, strict=True))[2]


def _stream(app: Backend, src: _Source) -> Iterator[tuple[float, str, str]]:
    """(-time, id, key) of a source's entries, newest first, each id once."""
    low = None if src.low == "-inf" else int(src.low)
    each: list[Iterator[tuple[float, str, str]]]
    if src.index:
        each = [
            ((-ms, job_id, k) for ms, job_id in jobindex.newest(app.redis, k, low))
            for k in src.keys
        ]
    else:
        each = [_newest_scored(app, k, src.low) for k in src.keys]
    seen: set[str] = set()
    for entry in heapq.merge(*each):
        if entry[1] not in seen:
            seen.add(entry[1])
            yield entry


def _newest_scored(app: Backend, key: str, low: str) -> Iterator[tuple[float, str, str]]:
    """(-score, id, key) of one state's set, highest score first, a page at a time."""
    start = 0
    while True:
        page = cast(
            "list[tuple[bytes, float]]",
            app.redis.zrevrangebyscore(key, "+inf", low, start=start, num=PAGE, withscores=True),
        )
        if not page:
            return
        start += len(page)
        for member, score in page:
            yield -score, member.decode(errors="replace"), key


def find(
    app: Backend,
    queues: list[str],
    status: str | None = None,
    *,
    task: str | None = None,
    tags: Sequence[str] | None = None,
    since: float | None = None,
    limit: int = 100,
    scan: int = 100_000,
) -> Found:
    """Jobs of ``queues`` (a queue's partitions count as queues) matching every condition
    given: ``status`` (one of ``STATUSES``; None or ``any``: every status), ``task`` (exact
    name), ``tags`` (the job carries each), ``since`` (seconds; see the module)."""
    wanted = check_filter(status, tags)
    state = None if status in (None, "any") else status
    floor = "-inf" if since is None else str(int((time.time() - since) * 1000))
    out: list[FoundJob] = []
    looked = pruned = 0
    complete = True
    for q in queues:
        keys = QueueKeys.of(q, app.prefix)
        src = _sources(app, keys, state or "any", task, wanted, floor)
        if src.index:
            pruned += sum(jobindex.prune(app.redis, keys, k) for k in src.keys)
        stream = _stream(app, src)
        while len(out) < limit:
            page = [e for _, e in zip(range(PAGE), stream, strict=False)]
            if not page:
                break
            if looked + len(page) > scan:
                page = page[: max(0, scan - looked)]
                complete = False
            looked += len(page)
            # a light read first (the filter's fields), the whole hash of candidates only
            pipe = app.redis.pipeline(transaction=False)
            for _, job_id, _ in page:
                pipe.hmget(keys.job(job_id), _LIGHT)
            chosen = [
                job_id
                for (_, job_id, _), values in zip(page, pipe.execute(), strict=True)
                if values[0] is not None and _light_match(values, state, wanted, floor)
            ]
            out += _read(app, keys, q, chosen, state, task, wanted, since, limit - len(out))
            if not complete:
                break
        if not complete or len(out) >= limit:
            break
    return Found(out, looked, complete, pruned)


def _light_match(values: list[Any], status: str | None, tags: tuple[str, ...], floor: str) -> bool:
    """The filter's cheap conditions on (status, enqueued_at, finished_at, tags)."""
    if status is not None and values[0].decode() != status:
        return False
    if floor != "-inf":
        at = values[2] if status == "failed" else values[1]
        if not at or int(at) < int(floor):
            return False
    return not tags or set(tags) <= set(stored_json(values[3], []))


def _read(
    app: Backend,
    keys: QueueKeys,
    queue: str,
    ids: list[str],
    status: str | None,
    task: str | None,
    tags: tuple[str, ...],
    since: float | None,
    room: int,
) -> list[FoundJob]:
    """The candidates' whole hashes, checked again (the task on the payload), up to ``room``."""
    if not ids or room <= 0:
        return []
    pipe = app.redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(keys.job(job_id), _FIELDS)
    out: list[FoundJob] = []
    for job_id, values in zip(ids, pipe.execute(), strict=True):
        if values[0] is None:
            continue  # ended and expired between the two reads
        info = JobInfo.from_fields(job_id, queue, values[:-1])
        found = FoundJob(**{**info.__dict__, "tags": tuple(stored_json(values[-1], []))})
        if _matches(found, status, task, tags, since):
            out.append(found)
            if len(out) >= room:
                break
    return out


async def afind(app: Backend, queues: list[str], status: str | None = None, **kw: Any) -> Found:
    """``find`` for async code (run on a thread: its reads are pipelined pages)."""
    return await asyncio.to_thread(find, app, queues, status, **kw)


def _matches(
    info: FoundJob,
    status: str | None,
    task: str | None,
    tags: tuple[str, ...],
    since: float | None,
) -> bool:
    if status is not None and info.status != status:
        return False
    if task is not None and info.task != task:
        return False
    if tags and not set(tags) <= set(info.tags):
        return False
    if since is not None:
        at = info.finished_at if status == "failed" else info.enqueued_at
        if not at or at < time.time() - since:
            return False
    return True
