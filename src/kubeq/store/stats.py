"""Queue numbers in one Redis round trip: what `kubeq stats` prints and the operator scales on.

``read_stats`` sends one pipelined EVALSHA of ``stats.lua`` per queue, so any number of
queues costs a single round trip. ``backlog`` counts jobs ready to run now, delayed jobs
that are already due included (they are waiting even when no worker is there to promote
them, which matters when scaling from zero). ``in_flight`` counts every job a worker holds,
prefetched ones included: a queue-length scaler that reads only the ready list misses them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeq import defaults
from kubeq.store.keys import DEFAULT_PREFIX, QueueKeys
from kubeq.store.scripts import LUA, run_pipeline, run_pipeline_async

WORKER_TTL_MS = defaults.WORKER_TTL_MS
HEADER = 17
"""stats.lua's numbers before the worker pairs (see its header)."""


@dataclass(frozen=True)
class QueueStats:
    """One queue's numbers at one instant (``now`` is the Redis server's clock, in seconds)."""

    queue: str
    now: float
    backlog: int
    """Jobs ready to run now (due delayed jobs included)."""
    in_flight: int
    """Jobs leased by workers: running, or prefetched and about to run."""
    delayed: int
    """Jobs waiting for a later time (delay, eta, retry backoff)."""
    dead: int
    """Jobs in the dead-letter queue."""
    oldest_ready_age: float
    """Seconds the oldest ready job has waited; 0 when none waits."""
    paused: bool
    workers: dict[str, int] = field(default_factory=dict)
    """Live worker id -> jobs it holds now (0 = idle)."""
    expired: int = 0
    """Jobs that expired before they started (``expires=``), ever."""
    rate_limited: bool = False
    """A rate limit (the queue's or a task's) held jobs back within the last seconds."""
    rate_limit: float = 0.0
    """The queue's own rate limit in starts per second (0: none)."""
    deferred: int = 0
    """Jobs waiting for their parents (``depends_on``); not backlog until they are ready."""
    sleeping: int = 0
    """Jobs in a durable sleep or wait (``kubeq.sleep``, ``kubeq.wait_for``) that is not due
    yet: they hold no worker and are not backlog (docs/durable.md)."""
    fair_keys: int = 0
    """Fairness keys with ready jobs (docs/fairness.md)."""
    debounced: int = 0
    """Debounced jobs waiting for their window to pass (not started; docs/patterns.md): also
    counted in ``delayed`` (or ``backlog`` once due)."""
    singleton_keys: int = 0
    """Singleton keys held by a live job (waiting or running)."""
    batches_forming: int = 0
    """Batches open for more items (neither full nor due)."""
    batched_items: int = 0
    """Items in batches not ended, not settled yet: a batch counts as one job in ``delayed``,
    ``backlog`` or ``in_flight``; its items are here."""

    @property
    def live_workers(self) -> int:
        return len(self.workers)

    @property
    def busy_workers(self) -> int:
        return sum(1 for n in self.workers.values() if n > 0)


FLOW_READ_MOST = 5000
"""The most members of each flow index stats.lua reads per queue and call."""


def _parse(queue: str, raw: Sequence[Any]) -> QueueStats:
    now_ms, backlog, in_flight, delayed, dead, oldest_ms, paused, expired, limited, per_ks = (
        int(x) for x in raw[: HEADER - 7]
    )
    deferred, sleeping, fair_keys = (int(raw[HEADER - i]) for i in (7, 6, 5))
    flow = [int(x) for x in raw[HEADER - 4 : HEADER]]
    workers = {
        (w.decode() if isinstance(w, bytes) else str(w)): int(n)
        for w, n in zip(raw[HEADER::2], raw[HEADER + 1 :: 2], strict=True)
    }
    return QueueStats(
        queue=queue,
        now=now_ms / 1000,
        backlog=backlog,
        in_flight=in_flight,
        delayed=delayed,
        dead=dead,
        oldest_ready_age=max(0.0, (now_ms - oldest_ms) / 1000) if oldest_ms >= 0 else 0.0,
        paused=bool(paused),
        workers=workers,
        expired=expired,
        rate_limited=bool(limited),
        rate_limit=per_ks / 1000,
        deferred=deferred,
        sleeping=sleeping,
        fair_keys=fair_keys,
        debounced=flow[0],
        singleton_keys=flow[1],
        batches_forming=flow[2],
        batched_items=flow[3],
    )


def _commands(queues: Iterable[str], prefix: str) -> list[tuple[str, list[str]]]:
    return [(q, QueueKeys.of(q, prefix).script_keys) for q in queues]


def read_stats(
    client: Any, queues: Iterable[str], prefix: str = DEFAULT_PREFIX
) -> list[QueueStats]:
    """Stats of every queue in ``queues``, in one round trip (sync redis-py client)."""
    commands = _commands(queues, prefix)
    if not commands:
        return []
    script = LUA["stats"]
    args = [WORKER_TTL_MS, FLOW_READ_MOST]
    raw = run_pipeline(client, [(script, keys, args) for _, keys in commands])
    return [_parse(q, r) for (q, _), r in zip(commands, raw, strict=True)]


async def read_stats_async(
    client: Any, queues: Iterable[str], prefix: str = DEFAULT_PREFIX
) -> list[QueueStats]:
    """Stats of every queue in ``queues``, in one round trip (redis.asyncio client)."""
    commands = _commands(queues, prefix)
    if not commands:
        return []
    script = LUA["stats"]
    args = [WORKER_TTL_MS, FLOW_READ_MOST]
    raw = await run_pipeline_async(client, [(script, keys, args) for _, keys in commands])
    return [_parse(q, r) for (q, _), r in zip(commands, raw, strict=True)]
