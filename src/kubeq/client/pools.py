"""Worker pools at enqueue: the queue that takes a job of a pool, and the refusal of a pool
that no TaskQueue declares for the job's queue.

A TaskQueue's ``spec.pools[]`` each run their own Deployment (docs/scaling.md, Worker pools).
The work of pool ``gpu`` on queue ``default`` lives in the queue ``default@gpu`` (``@`` is
never in a name a user picks, so a pool's queue cannot collide with a queue; a partition of
it is ``default@gpu#3``); each has its own Redis Cluster hash tag ``{default@gpu}``, so
nothing below the enqueue plan knows about pools. Only that pool's pods consume it.

The operator publishes each queue's pools in the hash ``keys.pools_key`` (field: the queue;
value: ``{"by": "<namespace>/<name>", "pools": {"<pool>": ["<task>", ...]}}``). An App reads
it with one HGETALL and keeps it ``defaults.WORKER_POOLS_CACHE_SECONDS``. A call goes to a
pool when it names one (``worker_pool=`` on the call or on ``@app.task``) or when its task is
listed in a pool's ``tasks``; a pool the queue's TaskQueue does not declare, or a queue no
TaskQueue declares pools for, raises :class:`UnknownWorkerPool` before anything is sent, so
a job never waits in a queue no pod consumes. Without pools nothing changes: no call is
routed and a job naming no pool is never refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from kubeq import defaults
from kubeq.errors import KubeqError
from kubeq.options import Call, TaskOptions
from kubeq.store import keys
from kubeq.store.partitions import SEP

SEPARATOR = "@"
"""Between a queue's name and its pool's: ``default@gpu``."""

Route = Callable[[str, Call, TaskOptions], str]


class UnknownWorkerPool(KubeqError, ValueError):
    """A call names a worker pool its queue's TaskQueue does not declare."""


@dataclass(frozen=True)
class QueuePools:
    """The pools a TaskQueue declares for one of its queues."""

    by: str
    """``<namespace>/<name>`` of the TaskQueue."""
    pools: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Pool name -> the task names it serves (routed there without naming the pool)."""

    def pool_of_task(self, task: str) -> str | None:
        for name, tasks in self.pools.items():
            if task in tasks:
                return name
        return None


Table = Mapping[str, QueuePools]


def pool_queue(queue: str, pool: str) -> str:
    """The queue holding ``pool``'s work of ``queue`` (a partition keeps its number last)."""
    base, sep, part = queue.partition(SEP)
    return f"{base}{SEPARATOR}{pool}{sep}{part}"


def encode(by: str, pools: Mapping[str, Iterable[str]]) -> str:
    """The published value of one queue (the operator writes it)."""
    return json.dumps({"by": by, "pools": {p: sorted(t) for p, t in pools.items()}})


def decode(raw: Mapping[Any, Any]) -> dict[str, QueuePools]:
    """The table from HGETALL's reply; an entry that cannot be read is left out."""
    table: dict[str, QueuePools] = {}
    for queue, value in raw.items():
        try:
            doc = json.loads(value)
            pools = {str(p): tuple(map(str, t)) for p, t in doc["pools"].items()}
            table[queue.decode() if isinstance(queue, bytes) else str(queue)] = QueuePools(
                str(doc["by"]), pools
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return table


def publish(
    client: Any, prefix: str, by: str, queues: Iterable[str], pools: Mapping[str, Iterable[str]]
) -> None:
    """Declare ``pools`` for ``queues`` (sync client): what the operator does for a TaskQueue,
    for a worker fleet run by hand (``kubeq worker --queue default@gpu``)."""
    value = encode(by, pools)
    client.hset(keys.pools_key(prefix), mapping=dict.fromkeys(queues, value))


def check(table: Table, queue: str, pool: str, task: str) -> str:
    """``pool``'s queue for ``queue``; UnknownWorkerPool when it is not declared there."""
    entry = table.get(queue)
    if entry is None:
        raise UnknownWorkerPool(
            f"task {task!r} asks for worker pool {pool!r}, but no TaskQueue declares worker "
            f"pools for queue {queue!r}: add the pool to spec.pools of the TaskQueue that "
            "serves the queue (docs/scaling.md, Worker pools) or enqueue without worker_pool"
        )
    if pool not in entry.pools:
        declared = ", ".join(sorted(entry.pools)) or "none"
        raise UnknownWorkerPool(
            f"task {task!r} asks for worker pool {pool!r}, which TaskQueue {entry.by} does not "
            f"declare for queue {queue!r} (its pools: {declared}): fix worker_pool or add "
            f"the pool to spec.pools"
        )
    return pool_queue(queue, pool)


def router(table: Table, then: Route | None) -> Route:
    """``route`` for ``plan_enqueue``: the pool's queue of a call that has a pool (named,
    or its task listed in a pool), then ``then`` (a partitioned queue's partition)."""

    def route(queue: str, call: Call, options: TaskOptions) -> str:
        pool = call.worker_pool or options.worker_pool
        if pool is None:
            entry = table.get(queue)
            pool = entry.pool_of_task(call.task) if entry is not None else None
        placed = then(queue, call, options) if then is not None else queue
        if pool is None:
            return placed
        check(table, queue, pool, call.task)
        return pool_queue(placed, pool)

    return route


class PoolCache:
    """One App's copy of the pools table, read again when older than ``ttl`` seconds."""

    def __init__(self, prefix: str, ttl: float = defaults.WORKER_POOLS_CACHE_SECONDS) -> None:
        self.key = keys.pools_key(prefix)
        self.ttl = ttl
        self._table: dict[str, QueuePools] = {}
        self._at = -1e18

    def _fresh(self) -> bool:
        return time.monotonic() - self._at < self.ttl

    def _keep(self, raw: Mapping[Any, Any]) -> dict[str, QueuePools]:
        self._table, self._at = decode(raw), time.monotonic()
        return self._table

    def table(self, client: Any, first: Callable[[], object]) -> dict[str, QueuePools]:
        """The table (one HGETALL when the copy is stale). When Redis cannot be read,
        ``first()`` (the plan without pools) runs before the error is raised, so a call the
        plan refuses is refused as it is without pools, Redis or not."""
        if self._fresh():
            return self._table
        try:
            return self._keep(client.hgetall(self.key))
        except (RedisError, OSError):
            first()
            raise

    async def atable(self, client: Any, first: Callable[[], object]) -> dict[str, QueuePools]:
        """``table`` for async code."""
        if self._fresh():
            return self._table
        try:
            return self._keep(await client.hgetall(self.key))
        except (RedisError, OSError):
            first()
            raise

    def forget(self) -> None:
        """Read the table again at the next enqueue."""
        self._at = -1e18


def needs_route(
    table: Table, calls: Iterable[Call], options_of: Callable[[str], TaskOptions]
) -> bool:
    """Whether any call may go to a pool (else the plan routes as it did without pools)."""
    if table:
        return True
    return any(c.worker_pool is not None or options_of(c.task).worker_pool for c in calls)


def refuse_in_flows(
    calls: Sequence[Call], flows: Iterable[int], options_of: Callable[[str], TaskOptions]
) -> None:
    """A debounced, singleton or batched call is not routed to a pool (its key's job is
    formed in Redis): one that names a pool is refused rather than run elsewhere."""
    for i in flows:
        call = calls[i]
        pool = call.worker_pool or options_of(call.task).worker_pool
        if pool is not None:
            raise ValueError(
                f"task {call.task!r}: a debounced, singleton or batched call is not routed to "
                f"worker pool {pool!r}; drop worker_pool= and give the pool's queue instead, "
                f"e.g. queue='default@{pool}'"
            )
