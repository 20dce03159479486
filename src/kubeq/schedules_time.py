"""When a schedule fires: cron lines read in an IANA time zone, DST handled as documented.

Pure functions of a :class:`Timing` and Unix times (seconds); no I/O, no clock. A cron line
is matched against the *wall clock* of the schedule's time zone (croniter over naive local
times), and each local match is turned into one instant:

- a local time that does not exist (the hour skipped when DST starts, e.g. 02:30 in
  Europe/Berlin on the last Sunday of March) runs once, at the first valid instant after
  it (03:00 local), with ``dst_gap="shift"``; with ``dst_gap="skip"`` it does not run.
  Several skipped matches (``*/15 2 * * *``) still run once;
- a local time that happens twice (the hour repeated when DST ends) runs once, at its first
  occurrence (before the clocks go back).

An interval (``every`` seconds) counts real elapsed time from its anchor (``start``, or the
Unix epoch), so DST never changes it. ``start`` and ``end`` bound every schedule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

SCAN_LIMIT = 100_000
"""The most cron matches one call looks at (a bound on a pathological line's cost)."""


@dataclass(frozen=True)
class Timing:
    """What decides a schedule's fire times (see the module docstring)."""

    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"
    start: int | None = None
    end: int | None = None
    dst_gap: str = "shift"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (zoneinfo is imported where a time zone is read: a worker
    that never reads one does not hold it). Raises ``zoneinfo.ZoneInfoNotFoundError`` (a
    ``KeyError``), ``ValueError`` or ``TypeError`` for a name that is none."""
    from zoneinfo import ZoneInfo  # noqa: PLC0415 - see above

    return ZoneInfo(name)


def _local(ts: float, tz: ZoneInfo) -> datetime:
    """The naive wall-clock time of instant ``ts`` in ``tz``."""
    return datetime.fromtimestamp(ts, tz).replace(tzinfo=None)


def to_instant(local: datetime, tz: ZoneInfo, dst_gap: str) -> int | None:
    """The Unix time of naive wall-clock ``local`` in ``tz``; None for a skipped time with
    ``dst_gap="skip"``. A repeated time maps to its first occurrence; a skipped time, with
    ``shift``, to the instant the clocks jumped (the first valid time after it)."""
    aware = local.replace(tzinfo=tz, fold=0)
    ts = aware.timestamp()
    if _local(ts, tz) == local:
        return int(ts)
    # it does not exist: fold=0 read it with the offset before the jump, so ts is past the
    # jump; the jump itself is the first instant whose local time is after ``local``
    if dst_gap == "skip":
        return None
    lo, hi = int(ts) - 4 * 3600, int(ts)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _local(mid, tz) > local:
            hi = mid
        else:
            lo = mid
    return hi


def _in_bounds(t: Timing, ts: int) -> bool:
    return (t.start is None or ts >= t.start) and (t.end is None or ts <= t.end)


def _cron_after(t: Timing, after: int) -> Iterator[int]:
    """Every cron fire instant > ``after``, increasing, each once."""
    assert t.cron is not None
    from croniter import croniter  # noqa: PLC0415 - only where a cron schedule is read

    tz = zone(t.timezone)
    it = croniter(t.cron, _local(after, tz))
    last = after
    for _ in range(SCAN_LIMIT):
        local: datetime = it.get_next(datetime)
        ts = to_instant(local, tz, t.dst_gap)
        if ts is None or ts <= last:
            continue  # skipped, or a repeat (second pass of a repeated hour, a merged gap)
        last = ts
        yield ts


def fires_after(t: Timing, after: float) -> Iterator[int]:
    """Fire instants strictly after ``after``, increasing, within start/end."""
    floor = int(after)
    if t.start is not None and floor < t.start - 1:
        floor = t.start - 1
    if t.every is not None:
        anchor = t.start if t.start is not None else 0
        n = max(0, (floor - anchor) // t.every + 1)
        while True:
            ts = anchor + n * t.every
            if t.end is not None and ts > t.end:
                return
            yield ts
            n += 1
    for ts in _cron_after(t, floor):
        if t.end is not None and ts > t.end:
            return
        yield ts


def next_fire(t: Timing, after: float) -> int | None:
    """The first fire instant after ``after``; None when the schedule has ended."""
    return next(fires_after(t, after), None)


def fires_between(t: Timing, after: float, until: float, limit: int) -> list[int]:
    """The latest ``limit`` fire instants in (after, until], increasing.

    Cost is bounded by ``limit`` (not by the length of the window): intervals are counted,
    cron lines are walked backwards from ``until``.
    """
    if limit <= 0 or until <= after:
        return []
    if t.every is not None:
        anchor = t.start if t.start is not None else 0
        top = min(int(until), t.end) if t.end is not None else int(until)
        if top < anchor:
            return []
        hi = (top - anchor) // t.every
        out = [anchor + k * t.every for k in range(max(0, hi - limit + 1), hi + 1)]
        return [ts for ts in out if ts > after and _in_bounds(t, ts)]
    assert t.cron is not None
    from croniter import croniter  # noqa: PLC0415 - only where a cron schedule is read

    tz = zone(t.timezone)
    it = croniter(t.cron, _local(int(until), tz) + timedelta(seconds=1))
    out = []
    for _ in range(SCAN_LIMIT):
        local: datetime = it.get_prev(datetime)
        ts = to_instant(local, tz, t.dst_gap)
        if ts is None or ts > until or (out and ts >= out[-1]):
            continue
        if ts <= after or (t.start is not None and ts < t.start):
            break
        if _in_bounds(t, ts):
            out.append(ts)
            if len(out) >= limit:
                break
    return sorted(out)


def iso(ts: float, timezone: str = "UTC") -> str:
    """An instant as ISO 8601 in a time zone (for people: CLI, dashboard, Events)."""
    return datetime.fromtimestamp(ts, zone(timezone)).isoformat()


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def count_between(t: Timing, after: float, until: float, cap: int = 10_000) -> int:
    """How many fire instants fall in (after, until], counted up to ``cap``."""
    n = 0
    for ts in fires_after(t, after):
        if ts > until or n >= cap:
            break
        n += 1
    if t.every is not None and n >= cap:
        return min(cap, int((until - after) // t.every))
    return n
