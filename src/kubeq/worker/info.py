"""What a running worker says about itself: the document it publishes beside its heartbeat
(``kubeq.store.workers``): who and where it is, what it runs, what it costs; and when it
publishes it (``Publisher``).
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from kubeq import defaults
from kubeq.store import workers
from kubeq.worker.delivery import Delivery
from kubeq.worker.settings import WorkerSettings
from kubeq.worker.tally import JobCounts

log = logging.getLogger("kubeq.workerinfo")

PUBLISH_SECONDS = 60.0
"""A worker publishes its document at least this often (more often when it changes), and
lists it in the index again then."""


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
    version: str | None = None,
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
        "version": version,
        "jobs": [dict(j) for j in jobs],
        "counts": {q: dict(c) for q, c in (counts or {}).items()},
        "started_at": started_at,
        "rss_bytes": rss_bytes(),
        "cpu_seconds": cpu_seconds(),
        "at": time.time() if now is None else now,
    }


def of_worker(
    settings: WorkerSettings,
    inflight: Iterable[Delivery],
    counts: JobCounts,
    started_at: float,
) -> dict[str, Any]:
    """The snapshot of a running worker: its settings, deliveries and job counters."""
    s = settings
    held = [d for d in list(inflight) if not d.settled]
    jobs = [{"id": d.id, "queue": d.job.queue.name, "task": d.task_name} for d in held if d.begun]
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
        version=s.version,
    )


CHANGES = ("queues", "concurrency", "pool", "busy", "prefetched", "jobs", "counts")
"""The fields of a document whose change is published at the next heartbeat; the others
(memory, CPU, the time) go with them, or with the publish every ``PUBLISH_SECONDS``."""


class Publisher:
    """Publishes a running worker's document beside its heartbeat: when what it says has
    changed (a job started or ended, a counter moved), and at least every
    ``PUBLISH_SECONDS`` (listing it in the index again then). A worker running long
    jobs thus publishes once per job, not every beat."""

    def __init__(self, settings: WorkerSettings, started_at: float) -> None:
        self._settings = settings
        self._started_at = started_at
        self._said: dict[str, Any] | None = None
        """What the last published document said (its ``CHANGES`` fields)."""
        self._quick: Any = None
        """The round trips and held jobs when ``_said`` was last found current."""
        self._listed_at = -PUBLISH_SECONDS
        """When (monotonic) the document was last published with its index entry."""
        # an idle worker publishes every PUBLISH_SECONDS: its document outlives that
        self._ttl_ms = max(
            defaults.WORKER_TTL_MS,
            int(settings.heartbeat_interval * 5000),
            int(PUBLISH_SECONDS * 2000),
        )

    async def beat(
        self,
        client: Any,
        inflight: Iterable[Delivery],
        counts: JobCounts,
        rounds: int,
    ) -> bool:
        """Publish if due; whether a document went to Redis. ``rounds``: the worker's round
        trips so far (every job's outcome goes in one): while they and what it holds stay
        the same, nothing the document says has changed, and it is not even made. Never
        raises (the Workers page is not worth a crash): a failed publish is logged and
        tried again next beat."""
        try:
            held = list(inflight)
            quick = (rounds, [(d.key, d.settled, d.begun) for d in held])
            now = time.monotonic()
            listed = now - self._listed_at >= PUBLISH_SECONDS
            if quick == self._quick and not listed:
                return False
            doc = of_worker(self._settings, held, counts, self._started_at)
            said = {k: doc[k] for k in CHANGES}
            if said == self._said and not listed:
                self._quick = quick
                return False
            s = self._settings
            await workers.publish(client, s.prefix, s.worker_id, doc, self._ttl_ms, listed)
        except Exception as exc:
            log.warning("could not publish worker info for the dashboard: %s", exc)
            return False
        self._said, self._quick = said, quick
        if listed:
            self._listed_at = now
        return True
