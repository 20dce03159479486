"""The schedule model: one definition for the TaskQueue spec and for the library.

A :class:`Schedule` says what to enqueue (task, queue, args, kwargs) and when (a cron line
in an IANA time zone, or an interval; ``schedules_time`` computes the instants), plus the
policies a run needs: a jitter, a start and end, what to do with runs missed while nothing
fired (``missed``), and what to do when the previous run is still going (``overlap``).
Constructing one validates every field and raises :class:`ScheduleError` naming it;
``from_spec`` reads the TaskQueue spec's camelCase form with the spec path in the error.
Pure: no I/O, no clock (``plan`` is given ``now``).
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import orjson

from kubeq.schedules_time import Timing, count_between, fires_between, next_fire, zone

MISSED = ("skip", "run_once", "run_all")
OVERLAP = ("allow", "skip", "buffer_one", "cancel_other")
DST_GAP = ("shift", "skip")
MAX_CATCH_UP = 1000
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,150}")


class ScheduleError(ValueError):
    """A schedule that cannot be used; ``field`` names it (``cron``, ``timezone``...)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _when(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ScheduleError(name, "give an aware datetime (with a tzinfo), not a naive one")
        return int(value.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            return _when(name, datetime.fromisoformat(value))
        except ValueError:
            pass
    raise ScheduleError(name, f"give a Unix time or an ISO 8601 time with offset, got {value!r}")


@dataclass(frozen=True)
class Schedule:
    """One schedule. Exactly one of ``cron`` and ``every`` (seconds) is set."""

    id: str
    task: str
    queue: str = "default"
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"
    jitter: float = 0.0
    """Each run waits a further 0..jitter seconds (fixed per schedule and due time)."""
    start: int | None = None
    end: int | None = None
    missed: str = "run_all"
    """``skip``: runs later than ``grace`` are dropped; ``run_once``: they collapse into one
    run; ``run_all``: each runs, the latest ``catch_up`` of them."""
    catch_up: int = 10
    grace: float = 60.0
    """A run fired at most this many seconds after its due time is on time, not missed."""
    overlap: str = "allow"
    """While the previous run has not ended: ``allow`` another, ``skip`` this one,
    ``buffer_one`` (one run waits for the previous to end; later ones are skipped), or
    ``cancel_other`` (the previous is cancelled, or aborted if running)."""
    dst_gap: str = "shift"
    prewarm_seconds: float = 0.0
    """Ask the operator for workers this many seconds before each run."""
    prewarm_replicas: int = 1
    owner: str = ""
    """Who manages it: empty for the library, ``taskqueue:<ns>/<name>`` for a spec schedule."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise ScheduleError("id", f"use 1-150 of A-Z a-z 0-9 _ . : -, got {self.id!r}")
        if not isinstance(self.task, str) or not self.task:
            raise ScheduleError("task", "name the registered task to enqueue")
        if (self.cron is None) == (self.every is None):
            raise ScheduleError("cron", "give exactly one of cron (a cron line) or every (seconds)")
        if self.cron is not None and (not isinstance(self.cron, str) or not _valid_cron(self.cron)):
            raise ScheduleError(
                "cron", f"{self.cron!r} is not a valid cron line; use 5 fields, e.g. '0 9 * * 1'"
            )
        if self.every is not None and (
            not isinstance(self.every, int) or isinstance(self.every, bool) or self.every < 1
        ):
            raise ScheduleError(
                "every", f"must be a whole number of seconds >= 1, got {self.every!r}"
            )
        try:
            zone(self.timezone)
        except (KeyError, ValueError, TypeError):  # ZoneInfoNotFoundError is a KeyError
            raise ScheduleError(
                "timezone", f"{self.timezone!r} is not an IANA time zone, e.g. 'Europe/Berlin'"
            ) from None
        object.__setattr__(self, "start", _when("start", self.start))
        object.__setattr__(self, "end", _when("end", self.end))
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ScheduleError("end", f"must not be before start ({self.end} < {self.start})")
        for name, allowed in (("missed", MISSED), ("overlap", OVERLAP), ("dst_gap", DST_GAP)):
            if getattr(self, name) not in allowed:
                raise ScheduleError(
                    name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        _number("jitter", self.jitter)
        _number("grace", self.grace)
        _number("prewarm_seconds", self.prewarm_seconds)
        for name, lo, hi in (("catch_up", 1, MAX_CATCH_UP), ("prewarm_replicas", 1, 10_000)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ScheduleError(name, f"must be a whole number from {lo} to {hi}, got {v!r}")
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        try:
            orjson.dumps([self.args, self.kwargs])
        except (TypeError, ValueError) as e:
            raise ScheduleError("args", f"arguments must be JSON values: {e}") from None

    @property
    def timing(self) -> Timing:
        return Timing(self.cron, self.every, self.timezone, self.start, self.end, self.dst_gap)

    def next_fire(self, after: float) -> int | None:
        return next_fire(self.timing, after)

    def jitter_of(self, due: int) -> float:
        """The extra delay of the run due at ``due``: the same on every replica."""
        if self.jitter <= 0:
            return 0.0
        digest = hashlib.sha256(f"{self.id}:{due}".encode()).digest()
        return self.jitter * int.from_bytes(digest[:8], "big") / 2**64

    def job_id(self, due: int) -> str:
        """The id of the run due at ``due``: a second enqueue of it finds the live job."""
        return f"schedule-{self.id}-{due}"

    def to_json(self) -> str:
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["args"], doc["kwargs"] = list(self.args), dict(self.kwargs)
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> Schedule:
        """A stored definition; parsed once per process and text (they are immutable)."""
        return _parse(text if isinstance(text, bytes) else text.encode())


_FIELDS = frozenset(f.name for f in fields(Schedule))


@functools.lru_cache(maxsize=200_000)
def _parse(text: bytes) -> Schedule:
    doc = orjson.loads(text)
    return Schedule(**{k: v for k, v in doc.items() if k in _FIELDS})


def _number(name: str, value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0:  # type: ignore[operator]
        raise ScheduleError(name, f"must be a number of seconds >= 0, got {value!r}")


@dataclass(frozen=True)
class Plan:
    """What one firing does: the due times to run and the next due time (None: ended)."""

    runs: tuple[int, ...]
    missed: int
    """Due times that were late by more than ``grace`` (run or not, by the policy)."""
    next_due: int | None


def plan(s: Schedule, due: int, now: float) -> Plan:
    """Fire a schedule whose next due time ``due`` has come (``due <= now``)."""
    # the stored due time is a run even when off the current grid (the time zone database
    # moved, or the caller set it); later ones come from the timing
    times = fires_between(s.timing, due, now, s.catch_up)
    if len(times) < s.catch_up:
        times = [due, *times]
    on_time = [t for t in times if now - t <= s.grace]
    late = [t for t in times if now - t > s.grace]
    if s.missed == "skip":
        runs = on_time
    elif s.missed == "run_once":
        runs = late[-1:] + on_time
    else:
        runs = times
    missed = len(late)
    if len(times) == s.catch_up and times and times[0] > due:  # more were late than fetched
        # late: the fire instants (whole seconds) before now - grace, so up to ceil(...) - 1
        # (an epsilon below now - grace is lost at an epoch's magnitude: 1e9 s, 2.4e-7 ulp)
        missed = count_between(s.timing, due - 1, math.ceil(now - s.grace) - 1)
    return Plan(tuple(runs), missed, next_fire(s.timing, now))


# -- the TaskQueue spec's form ---------------------------------------------------------------

_SPEC_KEYS = {
    "name": "id",
    "task": "task",
    "queue": "queue",
    "args": "args",
    "kwargs": "kwargs",
    "cron": "cron",
    "every": "every",
    "timezone": "timezone",
    "jitterSeconds": "jitter",
    "start": "start",
    "end": "end",
    "missed": "missed",
    "catchUp": "catch_up",
    "graceSeconds": "grace",
    "overlap": "overlap",
    "dstGap": "dst_gap",
    "prewarmSeconds": "prewarm_seconds",
    "prewarmReplicas": "prewarm_replicas",
}
_TO_SPEC = {v: k for k, v in _SPEC_KEYS.items()}


def from_spec(doc: Mapping[str, Any], path: str, *, default_queue: str, owner: str) -> Schedule:
    """A schedule from its TaskQueue spec form; ScheduleError names ``<path>.<field>``."""
    unknown = sorted(set(doc) - set(_SPEC_KEYS))
    if unknown:
        raise ScheduleError(
            f"{path}.{unknown[0]}", f"unknown field; use one of {', '.join(_SPEC_KEYS)}"
        )
    kw = {_SPEC_KEYS[k]: v for k, v in doc.items() if k in _SPEC_KEYS and v is not None}
    kw.setdefault("queue", default_queue)
    kw.setdefault("id", "")
    kw.setdefault("task", "")
    if isinstance(kw.get("every"), float) and kw["every"].is_integer():
        kw["every"] = int(kw["every"])
    try:
        return Schedule(owner=owner, **kw)
    except ScheduleError as e:
        name = _TO_SPEC.get(e.field, e.field)
        raise ScheduleError(f"{path}.{name}", str(e).split(": ", 1)[1]) from None
    except TypeError as e:
        raise ScheduleError(path, str(e)) from None


def _valid_cron(line: str) -> bool:
    from croniter import croniter  # noqa: PLC0415 - only where a cron schedule is checked

    return bool(croniter.is_valid(line))
