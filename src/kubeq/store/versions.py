"""Worker versions retired by a versioned rollout (``spec.rollout.strategy: Versioned``).

Each physical queue has a hash ``<queue>:retired`` (its own hash tag): version -> the time in
ms it was retired. The operator writes it when a newer version of the workers is up; a worker
started with ``KUBEQ_VERSION`` reads it on its heartbeat (one HEXISTS, never on the fetch
path) and, while its version is listed, fetches nothing and finishes what it holds. A version
that becomes current again is removed, and its workers fetch again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from kubeq.store.jobfields import text
from kubeq.store.keys import QueueKeys

VERSION_ENV = "KUBEQ_VERSION"
"""The environment variable that tells a worker its version (set by the operator)."""


async def is_retired(client: Any, queue: QueueKeys, version: str) -> bool:
    """Whether ``version``'s workers of ``queue`` should stop fetching (redis.asyncio)."""
    return bool(await client.hexists(queue.retired, version))


async def sync(
    client: Any, queues: Iterable[QueueKeys], current: str | None, retire: Iterable[str]
) -> dict[str, float]:
    """Mark ``retire`` retired (keeping the first time) and ``current`` not, on every queue in
    one round trip; returns version -> retired-at (seconds) as the first queue has it."""
    queues, retire = list(queues), list(retire)
    if not queues:
        return {}
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for q in queues:
        if current:
            pipe.hdel(q.retired, current)
        for version in retire:
            pipe.hsetnx(q.retired, version, now_ms)
    pipe.hgetall(queues[0].retired)
    replies = await pipe.execute()
    raw: Mapping[Any, Any] = replies[-1]
    return {text(k): int(v) / 1000 for k, v in raw.items()}


async def forget(client: Any, queues: Iterable[QueueKeys], version: str) -> None:
    """``version`` is gone (its Deployment deleted): remove its marks."""
    pipe = client.pipeline(transaction=False)
    for q in queues:
        pipe.hdel(q.retired, version)
    await pipe.execute()
