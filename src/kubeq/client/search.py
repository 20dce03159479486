"""Find jobs by status, task and age, and act on what a filter matches.

Reads only the sets each state already keeps (no SCAN, and nothing to expire: a job leaves
its set when it changes state or is deleted): ``queued`` the ready set, ``scheduled`` the
delayed set, ``active`` the active set, ``deferred`` the deferred set, ``failed`` the dead
letters. A page of ids at a time, with their hashes in one pipelined read, filtered by task
(exact name) and ``since`` (enqueued, or for ``failed`` dead-lettered, within that many
seconds), newest first, until ``limit`` match or ``scan`` entries were looked at.
Finished, cancelled and expired jobs are in no set, so they cannot be listed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from kubeq.store.backend import Backend
from kubeq.store.jobfields import JOB_FIELDS, JobInfo
from kubeq.store.keys import QueueKeys

STATUSES = ("queued", "scheduled", "active", "deferred", "failed")
PAGE = 500


@dataclass(frozen=True)
class Found:
    jobs: list[JobInfo]
    looked_at: int
    complete: bool
    """False when ``scan`` entries were read before the set ended (more may match)."""


def _set(keys: QueueKeys, status: str) -> str:
    return {
        "queued": keys.ready,
        "scheduled": keys.delayed,
        "active": keys.active,
        "deferred": keys.deferred,
        "failed": keys.dead,
    }[status]


def find(
    app: Backend,
    queues: list[str],
    status: str,
    *,
    task: str | None = None,
    since: float | None = None,
    limit: int = 100,
    scan: int = 100_000,
) -> Found:
    """Jobs of ``queues`` (a queue's partitions count as queues) in ``status``."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    floor = time.time() - since if since is not None else None
    out: list[JobInfo] = []
    looked = 0
    complete = True
    for q in queues:
        keys = QueueKeys.of(q, app.prefix)
        key = _set(keys, status)
        start = 0
        while len(out) < limit:
            if looked >= scan:
                complete = False
                break
            raw = cast("list[bytes]", app.redis.zrevrange(key, start, start + PAGE - 1))
            ids = [i.decode() for i in raw]
            if not ids:
                break
            start += len(ids)
            looked += len(ids)
            pipe = app.redis.pipeline(transaction=False)
            for i in ids:
                pipe.hmget(keys.job(i), list(JOB_FIELDS))
            for job_id, values in zip(ids, pipe.execute(), strict=True):
                info = JobInfo.from_fields(job_id, q, values)
                if _matches(info, status, task, floor):
                    out.append(info)
                    if len(out) >= limit:
                        break
    return Found(out, looked, complete)


def _matches(info: JobInfo, status: str, task: str | None, floor: float | None) -> bool:
    if task is not None and info.task != task:
        return False
    if floor is not None:
        at: Any = info.finished_at if status == "failed" else info.enqueued_at
        if not at or float(at) < floor:
            return False
    return True
