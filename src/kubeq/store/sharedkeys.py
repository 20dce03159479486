"""The Redis keys no single queue owns: the set of queue names, the worker pools' table, the
worker documents, the schedules and the audit stream (``kubeq.store.keys`` re-exports each;
a queue's own keys are there)."""

from __future__ import annotations

from kubeq import defaults

DEFAULT_PREFIX = defaults.PREFIX


def queues_key(prefix: str = DEFAULT_PREFIX) -> str:
    """SET of every queue name in use, for tools that list queues (`kubeq stats`).

    It has no hash tag and needs none: only SADD and SMEMBERS touch it, never a script or a
    command with another key, so on Redis Cluster it is one key on one node, reached through
    the cluster client like any other."""
    return f"{prefix}:queues"


def pools_key(prefix: str = DEFAULT_PREFIX) -> str:
    """HASH of the worker pools each queue's TaskQueue declares: field = a queue's name, value
    = JSON ``{"by": "<namespace>/<name>", "pools": {"<pool>": ["<task>", ...]}}``. Written by
    the operator, read (and cached briefly) by the client at enqueue (kubeq.client.pools). No
    hash tag, like the queue set: only HGETALL, HSET and HDEL touch it, never a script."""
    return f"{prefix}:pools"


WORKER_TAG = "{workerinfo}"
"""The hash tag of the worker documents, so the dashboard's MGET stays in one slot."""


def worker_index_key(prefix: str = DEFAULT_PREFIX) -> str:
    """ZSET ``kubeq:{workerinfo}:index``: worker id -> time of its last publish in ms."""
    return f"{prefix}:{WORKER_TAG}:index"


def worker_info_key(worker_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """STR ``kubeq:{workerinfo}:<worker id>``: one worker's JSON document (pod, host, pid,
    queues, concurrency, pool, busy, held jobs, job counters, RSS, CPU seconds); it expires
    when the worker stops publishing (TTL >= 15 s)."""
    return f"{prefix}:{WORKER_TAG}:{worker_id}"


SCHEDULE_TAG = "{schedules}"
"""The hash tag of every schedule key: the due-time index and the definitions share one slot,
so each schedule script is atomic on Redis Cluster too (suffixes start ``s:``, which no
queue key uses)."""


def schedule_keys(prefix: str = DEFAULT_PREFIX) -> tuple[str, str, str]:
    """``(due, warm, all)``: ZSET id -> next due time (s; a claim's lease deadline while one
    firer holds it; paused schedules are absent), ZSET id -> next due minus its pre-warm
    (only schedules with ``prewarm_seconds``), ZSET id -> 0 (every schedule, for listing)."""
    base = f"{prefix}:{SCHEDULE_TAG}:s:"
    return base + "due", base + "warm", base + "all"


def schedule_key(schedule_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """HASH of one schedule: spec (JSON), rev, next, last, last_job, paused, claim, fired,
    missed, skipped, updated."""
    return f"{prefix}:{SCHEDULE_TAG}:s:def:{schedule_id}"


def audit_key(prefix: str = DEFAULT_PREFIX) -> str:
    """STREAM ``kubeq:audit``: one entry per admin action (who, action, target, jobs), capped
    (``kubeq.store.audit.MAX_ENTRIES``). No hash tag: only XADD and XREVRANGE touch it."""
    return f"{prefix}:audit"
