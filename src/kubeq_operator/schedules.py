"""Periodic jobs (``spec.schedules``): the Kubernetes-native "beat".

Each poll, for every schedule, the due times between the last one handled and Redis' clock
are enqueued. Exactly once per due time, across restarts and with several operator
replicas: a due time is claimed with ``SET NX`` on
``<prefix>:schedule:{<namespace>/<taskqueue>/<name>}:<unix time>`` before it is enqueued,
and the job gets a deterministic id, which the library de-duplicates while the job lives.
The last handled due time is kept in ``<prefix>:schedule:{...}:last`` so a restarted
operator catches up (at most ``MAX_CATCH_UP`` missed times; older ones are skipped).
A brand-new schedule starts from now: it does not enqueue times before it existed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from kubeq_operator.spec import Schedule

MAX_CATCH_UP = 10
CLAIM_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Due:
    schedule: Schedule
    at: int
    """Unix time (seconds) of this occurrence."""

    @property
    def job_id(self) -> str:
        return f"schedule-{self.schedule.name}-{self.at}"


def due_times(cron: str, after: float, now: float, limit: int = MAX_CATCH_UP) -> list[int]:
    """Occurrences of ``cron`` in (after, now], the latest ``limit`` of them, in UTC."""
    it = croniter(cron, datetime.fromtimestamp(after, tz=UTC))
    out: list[int] = []
    while True:
        nxt = it.get_next(datetime)
        ts = int(nxt.timestamp())
        if ts > now:
            break
        out.append(ts)
        if len(out) > limit * 4:  # a very frequent cron after a long outage: keep the tail
            out = out[-limit:]
    return out[-limit:]


def base_key(prefix: str, namespace: str, taskqueue: str, name: str) -> str:
    return f"{prefix}:schedule:{{{namespace}/{taskqueue}/{name}}}"


async def tick(
    redis: Any,
    schedules: tuple[Schedule, ...],
    *,
    prefix: str,
    namespace: str,
    taskqueue: str,
    now: float,
    enqueue: Callable[[Due], Awaitable[None]],
) -> list[Due]:
    """Enqueue every schedule's due times up to ``now``; returns what this call enqueued."""
    done: list[Due] = []
    for sched in schedules:
        base = base_key(prefix, namespace, taskqueue, sched.name)
        raw = await redis.get(f"{base}:last")
        if raw is None:
            # first sight of this schedule: start now (SET NX so two operators agree)
            await redis.set(f"{base}:last", int(now), nx=True)
            continue
        last = float(raw)
        times = due_times(sched.cron, last, now)
        for at in times:
            claimed = await redis.set(f"{base}:{at}", "1", nx=True, ex=CLAIM_TTL_SECONDS)
            if claimed:
                due = Due(sched, at)
                await enqueue(due)
                done.append(due)
        if times:
            await redis.set(f"{base}:last", times[-1])
    return done
