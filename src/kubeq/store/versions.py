"""Worker versions retired by a versioned rollout (``spec.rollout.strategy: Versioned``).

Each physical queue has a hash ``<queue>:retired`` (its own hash tag): version -> the time in
ms it was retired. The operator writes it when a newer version of the workers is up; a worker
started with ``KUBEQ_VERSION`` reads it on its heartbeat (one HEXISTS, never on the fetch
path) and, while its version is listed, fetches nothing and finishes what it holds. A version
that becomes current again is removed, and its workers fetch again.

A job pinned to a version (``pin_version=True``, ``.set(version=...)``) is enqueued to that
version's own queue, ``<queue>~<version>`` (before a partition's ``#<n>``: ``default~3f2a9c1e``,
``default@gpu~3f2a9c1e#2``): a physical queue with its own hash tag, so every script runs on
it unchanged and its retries, lapsed leases and limits stay in it. Only that version's workers
consume it, retired or not; the operator keeps a version while its queue holds jobs
(kubeq_operator.pinned).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from kubeq.store.keys import PIN_SEP, QueueKeys, pin_of
from kubeq.store.partitions import SEP

VERSION_ENV = "KUBEQ_VERSION"
"""The environment variable that tells a worker its version (set by the operator)."""

_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_version(version: object, where: str = "version") -> str:
    """``version`` if it can name a worker version, else ValueError naming ``where``."""
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ValueError(
            f"{where} must be a worker version (1-64 letters, digits, '_', '.' or '-', as "
            f"{VERSION_ENV} holds), got {version!r}"
        )
    return version


def pinned_queue(queue: str, version: str) -> str:
    """The queue of ``queue``'s jobs pinned to ``version`` (a partition keeps its number last)."""
    base, sep, part = queue.partition(SEP)
    if PIN_SEP in base:
        base = base.split(PIN_SEP, 1)[0]  # already pinned: to the newer pin
    return f"{base}{PIN_SEP}{version}{sep}{part}"


def worker_queues(queues: Iterable[str], version: str | None) -> list[str]:
    """What a worker of ``version`` consumes: each of ``queues``, preceded by its version's
    pinned queue (a pinned job waits behind no unpinned one)."""
    out: list[str] = []
    for q in queues:
        if version and pin_of(q) is None:
            out.append(pinned_queue(q, version))
        out.append(q)
    return out


def unpinned(queue: str) -> str:
    """The queue a pinned queue's jobs would be on without their pin."""
    base, sep, part = queue.partition(SEP)
    return f"{base.split(PIN_SEP, 1)[0]}{sep}{part}"


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
    return {k.decode() if isinstance(k, bytes) else str(k): int(v) / 1000 for k, v in raw.items()}


async def forget(client: Any, queues: Iterable[QueueKeys], version: str) -> None:
    """``version`` is gone (its Deployment deleted): remove its marks."""
    pipe = client.pipeline(transaction=False)
    for q in queues:
        pipe.hdel(q.retired, version)
    await pipe.execute()
