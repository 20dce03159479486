"""Fair queues from outside the fetch: the weights of a queue's keys and the by-key numbers.

The order itself is the fetch script's (``lua/_fair.lua``); here are what people and the
operator read and set: ``set_weights`` (a hash per queue, on every partition), and
``read_fair_stats`` (one ``fairstats.lua`` call per queue, pipelined: the keys with ready
jobs, their backlog and the wait of their next job, the oldest first; docs/fairness.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeq import defaults
from kubeq.checks import check_fair_key
from kubeq.store.keys import DEFAULT_PREFIX, QueueKeys
from kubeq.store.scripts import LUA, run_pipeline, run_pipeline_async

UNKEYED = ""
"""The name of the jobs without a fairness key in the weights: they take turns as one key."""


def check_weight(key: object, weight: object) -> float:
    """A key's weight: a finite number within the allowed range, or ValueError naming it."""
    if key != UNKEYED:
        check_fair_key(key, "a weight's key")
    number = isinstance(weight, int | float) and not isinstance(weight, bool)
    value = float(weight) if number else math.nan  # type: ignore[arg-type]
    if not defaults.FAIR_WEIGHT_MIN <= value <= defaults.FAIR_WEIGHT_MAX:
        raise ValueError(
            f"the weight of fair key {key!r} must be a number from {defaults.FAIR_WEIGHT_MIN} "
            f"to {defaults.FAIR_WEIGHT_MAX:g} (1 is the default), got {weight!r}"
        )
    return value


def set_weights(
    client: Any,
    queues: Iterable[str],
    weights: Mapping[str, float | None],
    prefix: str = DEFAULT_PREFIX,
    *,
    replace: bool = False,
) -> None:
    """Set the weights of fairness keys on every queue given (a partitioned queue's
    partitions): a weight of None removes the key's (back to 1); ``replace`` drops every
    weight not given. All are checked before anything is written. The next fetch uses them."""
    checked = {k: None if w is None else check_weight(k, w) for k, w in weights.items()}
    for name in queues:
        key = QueueKeys.of(name, prefix).fair_weights
        with client.pipeline() as pipe:  # MULTI (one key): never half the weights
            if replace:
                pipe.delete(key)
            gone = [k for k, w in checked.items() if w is None]
            if gone and not replace:
                pipe.hdel(key, *gone)
            kept = {k: repr(w) for k, w in checked.items() if w is not None}
            if kept:
                pipe.hset(key, mapping=kept)
            pipe.execute()


def read_weights(client: Any, queue: str, prefix: str = DEFAULT_PREFIX) -> dict[str, float]:
    """The weights set on one queue (keys not listed weigh 1)."""
    raw = client.hgetall(QueueKeys.of(queue, prefix).fair_weights)
    return {_text(k): float(v) for k, v in raw.items()}


@dataclass(frozen=True)
class KeyStats:
    """One fairness key with ready jobs."""

    key: str
    backlog: int
    """Its ready jobs."""
    wait: float
    """Seconds its next job has been ready (the oldest of its highest priority)."""
    weight: float


@dataclass(frozen=True)
class FairStats:
    """A queue's fairness keys at one instant (its partitions added up)."""

    queue: str
    active_keys: int
    """Keys with ready jobs (their state costs nothing once they have none)."""
    scanned: int
    """How many of them were looked at (at most ``scan``, in the order they will be served)."""
    unkeyed_backlog: int
    """Ready jobs without a fairness key."""
    unkeyed_wait: float
    keys: list[KeyStats] = field(default_factory=list)
    """The keys whose next job waited longest, oldest first (at most ``top``)."""

    @property
    def worst(self) -> KeyStats | None:
        return self.keys[0] if self.keys else None


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _parse(queue: str, raw: Sequence[Any]) -> FairStats:
    now, active, scanned, unkeyed, uoldest = (int(x) for x in raw[:5])
    rows = [
        KeyStats(
            key=_text(raw[i]),
            backlog=int(raw[i + 1]),
            wait=max(0.0, (now - int(raw[i + 2])) / 1000),
            weight=float(_text(raw[i + 3])),
        )
        for i in range(5, len(raw), 4)
    ]
    return FairStats(
        queue,
        active,
        scanned,
        unkeyed,
        max(0.0, (now - uoldest) / 1000) if uoldest >= 0 else 0.0,
        rows,
    )


def combine(queue: str, parts: Sequence[FairStats], top: int) -> FairStats:
    """One queue's numbers from its partitions' (a key may be active in several)."""
    merged: dict[str, KeyStats] = {}
    for part in parts:
        for k in part.keys:
            seen = merged.get(k.key)
            if seen is None:
                merged[k.key] = k
            else:
                merged[k.key] = KeyStats(
                    k.key, seen.backlog + k.backlog, max(seen.wait, k.wait), k.weight
                )
    rows = sorted(merged.values(), key=lambda k: -k.wait)[:top]
    return FairStats(
        queue,
        sum(p.active_keys for p in parts),
        sum(p.scanned for p in parts),
        sum(p.unkeyed_backlog for p in parts),
        max((p.unkeyed_wait for p in parts), default=0.0),
        rows,
    )


def _calls(queues: Iterable[str], prefix: str, top: int, scan: int) -> list[Any]:
    out = []
    for q in queues:
        keys = QueueKeys.of(q, prefix)
        out.append((q, keys.script_keys, [keys.base, top, scan]))
    return out


def read_fair_stats(
    client: Any,
    queues: Iterable[str],
    prefix: str = DEFAULT_PREFIX,
    top: int = defaults.FAIR_TOP,
    scan: int = defaults.FAIR_SCAN,
) -> list[FairStats]:
    """The by-key numbers of every queue given, in one round trip (sync client)."""
    calls = _calls(queues, prefix, top, scan)
    if not calls:
        return []
    script = LUA["fairstats"]
    raw = run_pipeline(client, [(script, keys, args) for _, keys, args in calls])
    return [_parse(q, r) for (q, _, _), r in zip(calls, raw, strict=True)]


async def read_fair_stats_async(
    client: Any,
    queues: Iterable[str],
    prefix: str = DEFAULT_PREFIX,
    top: int = defaults.FAIR_TOP,
    scan: int = defaults.FAIR_SCAN,
) -> list[FairStats]:
    """``read_fair_stats`` for a redis.asyncio client."""
    calls = _calls(queues, prefix, top, scan)
    if not calls:
        return []
    script = LUA["fairstats"]
    raw = await run_pipeline_async(client, [(script, keys, args) for _, keys, args in calls])
    return [_parse(q, r) for (q, _, _), r in zip(calls, raw, strict=True)]


async def sync_weights_async(
    client: Any, wanted: Mapping[str, Mapping[str, float]], prefix: str = DEFAULT_PREFIX
) -> list[str]:
    """Make each queue's weights exactly ``wanted[queue]`` (the operator's ``spec.fairness``;
    keys are physical queues). Two pipelined round trips, the second only when one differs.
    Returns what changed, for an Event."""
    queues = list(wanted)
    if not queues:
        return []
    keys = [QueueKeys.of(q, prefix).fair_weights for q in queues]
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        current = await pipe.execute()
    changes: list[str] = []
    async with client.pipeline(transaction=True) as pipe:
        for q, key, now in zip(queues, keys, current, strict=True):
            want = {k: float(w) for k, w in wanted[q].items()}
            if {_text(k): float(v) for k, v in now.items()} == want:
                continue
            pipe.delete(key)
            if want:
                pipe.hset(key, mapping={k: repr(w) for k, w in want.items()})
            shown = ", ".join(f"{k or '(no key)'}={w:g}" for k, w in sorted(want.items()))
            changes.append(f"{q}: fairness weights {shown or 'none'}")
        if changes:
            await pipe.execute()
    return changes
