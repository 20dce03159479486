"""Schedules in Redis: definitions, their state and the one due-time index.

Every schedule is a hash (``keys.schedule_key``) holding its definition (the model's JSON)
and its state (next due time, last run and its job, counters, paused, a firer's claim), and
an entry in the due-time index (``keys.schedule_keys``: a sorted set scored by the next due
time), so a firer finds what is due with one ZRANGEBYSCORE however many schedules exist.
Every change goes through a Lua script (``lua/schedule_*.lua``), atomic with the firers'
claims. Functions here build the script calls; ``run`` / ``arun`` send them on a sync or
asyncio client. Time is Unix seconds; "now" for a definition change is the caller's clock.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from kubeq.schedules import Schedule, ScheduleError
from kubeq.store.keys import schedule_key, schedule_keys, validate_queue_name
from kubeq.store.scripts import LUA, ScriptCall, run_pipeline, run_pipeline_async


@dataclass(frozen=True)
class ScheduleState:
    """A schedule as stored: its definition and what happened to it."""

    schedule: Schedule
    next_due: int | None
    last_due: int | None
    last_job: str | None
    paused: bool
    fired: int
    missed: int
    skipped: int
    claimed: bool
    buffered: int | None
    updated_ms: int
    fired_at_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        """For ``-o json`` and the dashboard: the definition's fields plus the state."""
        doc = {k: v for k, v in vars(self).items() if k != "schedule"}
        doc.update(
            {k: getattr(self.schedule, k) for k in self.schedule.__dataclass_fields__},
            args=list(self.schedule.args),
        )
        return doc


def _int(v: Any) -> int | None:
    return int(float(v)) if v not in (None, b"", "") else None


def _text(v: Any) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


def parse_state(fields: dict[Any, Any]) -> ScheduleState | None:
    """A hash as read by HGETALL; None when it is empty (no such schedule)."""
    f = {_text(k): v for k, v in fields.items()}
    if not f.get("spec"):
        return None
    return ScheduleState(
        schedule=Schedule.from_json(f["spec"]),
        next_due=_int(f.get("next")),
        last_due=_int(f.get("last")),
        last_job=_text(f.get("last_job")),
        paused=bool(f.get("paused")),
        fired=_int(f.get("fired")) or 0,
        missed=_int(f.get("missed")) or 0,
        skipped=_int(f.get("skipped")) or 0,
        claimed=bool(f.get("claim")),
        buffered=_int(f.get("buffered")),
        updated_ms=_int(f.get("updated")) or 0,
        fired_at_ms=_int(f.get("fired_at")),
    )


def upsert_call(
    s: Schedule, prefix: str, old: Schedule | None, paused: bool | None, now: float | None = None
) -> ScriptCall:
    """Write ``s``; its next due time is recomputed when it is new or its timing changed
    (``old``, the stored definition), else kept. ``paused`` None keeps the stored state."""
    try:
        validate_queue_name(s.queue)
    except ValueError as e:
        raise ScheduleError("queue", str(e)) from None
    due, warm, all_ = schedule_keys(prefix)
    reset = old is None or old.timing != s.timing
    nxt = s.next_fire(time.time() if now is None else now)
    flag = "" if paused is None else ("1" if paused else "0")
    args = [s.id, s.to_json(), "" if nxt is None else nxt, s.prewarm_seconds, int(reset), flag]
    return (LUA["schedule_upsert"], [due, warm, all_, schedule_key(s.id, prefix)], args)


def state_call(s: Schedule, prefix: str, action: str, now: float | None = None) -> ScriptCall:
    """``delete``, ``pause`` or ``resume`` (which skips the runs due while paused)."""
    due, warm, all_ = schedule_keys(prefix)
    nxt = s.next_fire(time.time() if now is None else now) if action == "resume" else None
    args = [s.id, action, "" if nxt is None else nxt, s.prewarm_seconds]
    return (LUA["schedule_state"], [due, warm, all_, schedule_key(s.id, prefix)], args)


def run(client: Any, calls: list[ScriptCall]) -> list[Any]:
    return run_pipeline(client, calls)


async def arun(client: Any, calls: list[ScriptCall]) -> list[Any]:
    return await run_pipeline_async(client, calls)


def read(client: Any, prefix: str, ids: Sequence[str]) -> list[ScheduleState | None]:
    pipe = client.pipeline(transaction=False)
    for i in ids:
        pipe.hgetall(schedule_key(i, prefix))
    return [parse_state(f) for f in pipe.execute()]


async def aread(client: Any, prefix: str, ids: Sequence[str]) -> list[ScheduleState | None]:
    pipe = client.pipeline(transaction=False)
    for i in ids:
        pipe.hgetall(schedule_key(i, prefix))
    return [parse_state(f) for f in await pipe.execute()]


def list_ids(client: Any, prefix: str, after: str = "", limit: int = 1000) -> list[str]:
    """Schedule ids in name order, after ``after`` (a page: pass the last id seen)."""
    lo = f"({after}" if after else "-"
    raw = client.zrangebylex(schedule_keys(prefix)[2], lo, "+", start=0, num=limit)
    return [cast("str", _text(r)) for r in raw]


async def alist_ids(client: Any, prefix: str, after: str = "", limit: int = 1000) -> list[str]:
    lo = f"({after}" if after else "-"
    raw = await cast(
        "Awaitable[list[Any]]",
        client.zrangebylex(schedule_keys(prefix)[2], lo, "+", start=0, num=limit),
    )
    return [cast("str", _text(r)) for r in raw]


async def awarm(client: Any, prefix: str, now: float) -> list[tuple[str, int]]:
    """Schedules inside their pre-warm window now: (id, window start), for the operator."""
    raw = await client.zrangebyscore(schedule_keys(prefix)[1], "-inf", now, withscores=True)
    return [(cast("str", _text(m)), int(score)) for m, score in raw]


async def aids_with_prefix(client: Any, prefix: str, id_prefix: str) -> list[str]:
    """Every schedule id that starts with ``id_prefix`` (ids are ASCII: one range read)."""
    raw = await client.zrangebylex(schedule_keys(prefix)[2], f"[{id_prefix}", f"({id_prefix}\xff")
    return [cast("str", _text(r)) for r in raw]
