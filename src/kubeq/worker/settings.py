"""How one worker process runs: ``WorkerSettings``, filled by ``kubeq worker``'s options.

Every default comes from ``defaults``, so the CLI, the worker and the operator (which writes
the worker's command line into the Deployment) agree.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from kubeq import defaults


@dataclass
class WorkerSettings:
    """How one worker process runs. Defaults suit a pod with the default 30 s grace."""

    tasks_module: str
    queues: list[str]
    """Queues to consume, in priority order: a queue is served only when those before it
    have nothing ready."""
    concurrency: int = defaults.CONCURRENCY
    """Jobs this process runs at once."""
    prefetch_ms: float = defaults.PREFETCH_MS
    """Lease ahead of a free slot as many jobs as the slots finish in this many ms, by the
    measured run time (prefetch.py); 0: fetch only for free slots."""
    pool: str = defaults.POOL
    """Where sync tasks run: "thread" (default), "process" (CPU-bound) or "async" (same as
    thread for sync tasks; async tasks always run on the event loop)."""
    partitions: dict[str, int] = field(default_factory=dict)
    """Partitioned queues (``App(partitions=...)``, the tasks' App): a callback or chain link
    this worker hands off to one of them goes to the partition an enqueue would choose."""
    redis_url: str | None = None
    prefix: str = defaults.PREFIX
    lease_seconds: float = defaults.LEASE_SECONDS
    """A job whose worker stops renewing its lease for this long is delivered again."""
    drain_timeout: float = defaults.DRAIN_TIMEOUT
    """Seconds running jobs get to finish after SIGTERM before they are handed back."""
    metrics_port: int | None = None
    stall_seconds: float = defaults.STALL_SECONDS
    """/healthz fails when the loop has not completed a round trip to Redis for this long."""
    burst: bool = False
    """Stop once the queues have nothing ready and nothing is in flight (``--burst``; tests
    and one-off batches). Jobs scheduled for later (delay, eta, retry backoff) stay queued."""
    max_jobs: int | None = None
    """Lease at most this many jobs in the worker's life, then stop once their outcomes are
    sent (``--max-jobs``; ``--burst --max-jobs 1`` is the one-job pod of a Job-mode pool)."""
    handle_signals: bool = True
    """Drain on SIGTERM/SIGINT; off when the worker runs inside someone else's loop
    (``kubeq.testing.drain``)."""
    version: str | None = field(default_factory=lambda: os.environ.get("KUBEQ_VERSION") or None)
    """The worker spec's version (a versioned rollout sets ``KUBEQ_VERSION``): while the
    operator lists it as retired, this worker fetches nothing (kubeq.store.versions)."""
    worker_id: str = field(default_factory=lambda: default_worker_id())  # noqa: PLW0108 - defined below

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats: often enough for several renewals per lease, and
        for the operator to see busy/idle state change within a couple of seconds."""
        return max(0.1, min(2.0, self.lease_seconds / 4))


def default_worker_id() -> str:
    """``<pod or host name>:<pid>:<random>``; the operator maps workers to pods by the name."""
    host = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
