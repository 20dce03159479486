"""The documents workers publish about themselves, for the dashboard's Workers page and the
operator's drain-rate estimate.

The queue keys only know a worker's id, its last heartbeat and how many jobs it holds. A person
looking at a stuck queue also wants the pod, its queues, concurrency, pool, memory, CPU, and
the jobs it runs. Each worker therefore publishes one small JSON document beside its
heartbeat (when what it says changes, and at least every minute; ``kubeq.worker.info`` makes
it), and readers get all of them in one round trip. The keys (``keys.worker_index_key``,
``keys.worker_info_key``) share one Redis Cluster hash tag, so the reader's MGET stays in one
slot.

A worker that stops publishing disappears when its document expires; the index entry is
pruned by the next publish of any worker. Nothing here is secret: no arguments, no URLs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from kubeq import defaults
from kubeq.store.jobfields import text
from kubeq.store.keys import worker_index_key, worker_info_key


async def publish(
    client: Any,
    prefix: str,
    worker_id: str,
    info: Mapping[str, Any],
    ttl_ms: int,
    index: bool = True,
) -> None:
    """Write ``info`` for ``worker_id`` (redis.asyncio client), in one round trip; with
    ``index``, also list it in the index and prune the index's entries older than 10 x
    ``ttl_ms`` (so a caller lists itself again well within that; the document alone is one
    SET)."""
    key = worker_info_key(worker_id, prefix)
    if not index:
        await client.set(key, orjson.dumps(dict(info)), px=ttl_ms)
        return
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    pipe.set(key, orjson.dumps(dict(info)), px=ttl_ms)
    pipe.zadd(worker_index_key(prefix), {worker_id: now_ms})
    # entries far older than any live document: their workers are gone (clock skew tolerated)
    pipe.zremrangebyscore(worker_index_key(prefix), "-inf", now_ms - 10 * ttl_ms)
    await pipe.execute()


async def read_all(client: Any, prefix: str = defaults.PREFIX) -> list[dict[str, Any]]:
    """Every live worker's document (redis.asyncio client), sorted by id; two round trips."""
    ids = [text(i) for i in await client.zrange(worker_index_key(prefix), 0, -1)]
    if not ids:
        return []
    raw = await client.mget([worker_info_key(i, prefix) for i in ids])
    out: list[dict[str, Any]] = []
    for value in raw:
        if value is None:
            continue  # expired: that worker stopped publishing
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return sorted(out, key=lambda d: str(d.get("id", "")))
