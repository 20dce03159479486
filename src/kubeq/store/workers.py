"""What a worker says about itself, for the dashboard's Workers page (issue 14).

The queue keys only know a worker's id, its last heartbeat and how many jobs it holds. A person
looking at a stuck queue also wants the pod, its queues, concurrency, pool, memory, CPU, and
the jobs it runs. Each worker therefore publishes one small JSON document with its heartbeat
(every couple of seconds), and the dashboard reads all of them in one round trip.

Keys (one Redis Cluster hash tag, so the reader's MGET stays in one slot)::

    kubeq:{workerinfo}:index         ZSET  worker id -> time of its last publish in ms
    kubeq:{workerinfo}:<worker id>   STR   JSON from ``snapshot()``; expires after ``ttl_ms``

A worker that stops publishing disappears when its document expires; the index entry is
pruned by the next publish of any worker. Nothing here is secret: no arguments, no URLs.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from kubeq import defaults

if TYPE_CHECKING:
    from kubeq.worker.loop import Worker

log = logging.getLogger("kubeq.workerinfo")

TAG = "{workerinfo}"


def index_key(prefix: str = defaults.PREFIX) -> str:
    """ZSET of the worker ids that published, scored by the time of their last publish."""
    return f"{prefix}:{TAG}:index"


def info_key(worker_id: str, prefix: str = defaults.PREFIX) -> str:
    """STR holding one worker's JSON document; it expires when the worker stops publishing."""
    return f"{prefix}:{TAG}:{worker_id}"


def rss_bytes() -> int:
    """Resident memory of this process now (/proc on Linux; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def cpu_seconds() -> float:
    """User + system CPU seconds this process has used so far."""
    t = os.times()
    return round(t.user + t.system, 3)


def snapshot(
    *,
    worker_id: str,
    queues: Iterable[str],
    concurrency: int,
    pool: str,
    started_at: float,
    busy: int = 0,
    jobs: Iterable[Mapping[str, Any]] = (),
    counts: Mapping[str, Mapping[str, int]] | None = None,
    now: float | None = None,
    prefetched: int = 0,
) -> dict[str, Any]:
    """One worker's document: who and where it is, what it runs and what it costs.

    ``jobs`` are the deliveries it runs (``{"id", "queue", "task"}``; the start time is in
    the job's hash); ``prefetched`` counts those it leased ahead (prefetch.py) that wait for a
    slot;
    ``counts`` maps queue -> outcome (finished, retried, failed, requeued) -> jobs settled since
    the process started, from which the dashboard derives throughput and failure rate.
    """
    return {
        "id": worker_id,
        "pod": os.environ.get("POD_NAME") or socket.gethostname(),
        "host": os.environ.get("NODE_NAME") or socket.gethostname(),
        "pid": os.getpid(),
        "queues": list(queues),
        "concurrency": concurrency,
        "pool": pool,
        "busy": busy,
        "prefetched": prefetched,
        "jobs": [dict(j) for j in jobs],
        "counts": {q: dict(c) for q, c in (counts or {}).items()},
        "started_at": started_at,
        "rss_bytes": rss_bytes(),
        "cpu_seconds": cpu_seconds(),
        "at": time.time() if now is None else now,
    }


async def publish(
    client: Any, prefix: str, worker_id: str, info: Mapping[str, Any], ttl_ms: int
) -> None:
    """Write ``info`` for ``worker_id`` (redis.asyncio client), in one round trip."""
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    pipe.set(info_key(worker_id, prefix), orjson.dumps(dict(info)), px=ttl_ms)
    pipe.zadd(index_key(prefix), {worker_id: now_ms})
    # entries far older than any live document: their workers are gone (clock skew tolerated)
    pipe.zremrangebyscore(index_key(prefix), "-inf", now_ms - 10 * ttl_ms)
    await pipe.execute()


async def read_all(client: Any, prefix: str = defaults.PREFIX) -> list[dict[str, Any]]:
    """Every live worker's document (redis.asyncio client), sorted by id; two round trips."""
    ids = [_text(i) for i in await client.zrange(index_key(prefix), 0, -1)]
    if not ids:
        return []
    raw = await client.mget([info_key(i, prefix) for i in ids])
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


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# -- the worker side -------------------------------------------------------------------------


def of_worker(worker: Worker, started_at: float) -> dict[str, Any]:
    """The snapshot of a running ``Worker``: its settings, deliveries and job counters."""
    s = worker.settings
    held = [d for d in list(worker.inflight.values()) if not d.settled]
    jobs = [
        {"id": d.id, "queue": d.job.queue.name, "task": d.task_name}
        for d in held
        if d.runner is not None
    ]
    counts: dict[str, dict[str, int]] = {}
    for metric in worker.metrics.jobs.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                q, outcome = sample.labels["queue"], sample.labels["outcome"]
                per = counts.setdefault(q, {})
                per[outcome] = per.get(outcome, 0) + int(sample.value)
    return snapshot(
        worker_id=s.worker_id,
        queues=s.queues,
        concurrency=s.concurrency,
        pool=s.pool,
        started_at=started_at,
        busy=len(jobs),
        jobs=jobs,
        counts=counts,
        prefetched=len(held) - len(jobs),
    )


async def publish_worker(worker: Worker, client: Any, started_at: float) -> None:
    """Publish ``worker``'s snapshot; never raises (the Workers page is not worth a crash)."""
    try:
        ttl_ms = max(defaults.WORKER_TTL_MS, int(worker.settings.heartbeat_interval * 5000))
        info = of_worker(worker, started_at)
        await publish(client, worker.settings.prefix, worker.settings.worker_id, info, ttl_ms)
    except Exception as exc:
        log.warning("could not publish worker info for the dashboard: %s", exc)
