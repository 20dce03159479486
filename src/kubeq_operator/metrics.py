"""The operator's Prometheus metrics, with the names docs/architecture.md ("Metrics") fixes.

One registry per process, served by ``serve(port)`` on ``/metrics``. Gauges carry the
labels namespace and taskqueue (and queue for the per-queue numbers); ``forget`` drops a
deleted TaskQueue's series so they do not linger.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    start_http_server,
)

if TYPE_CHECKING:
    from kubeq.store.stats import QueueStats

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series (kubeq.worker.metrics)
REGISTRY = CollectorRegistry()

QUEUE_LABELS = ["namespace", "taskqueue", "queue"]
TQ_LABELS = ["namespace", "taskqueue"]

backlog = Gauge(
    "kubeq_queue_backlog",
    "Jobs ready to run (due delayed jobs included).",
    QUEUE_LABELS,
    registry=REGISTRY,
)
in_flight = Gauge(
    "kubeq_queue_in_flight",
    "Jobs held by workers (running or prefetched).",
    QUEUE_LABELS,
    registry=REGISTRY,
)
oldest_age = Gauge(
    "kubeq_queue_oldest_job_age_seconds",
    "Seconds the oldest ready job has waited.",
    QUEUE_LABELS,
    registry=REGISTRY,
)
expired = Gauge(
    "kubeq_queue_expired_jobs",
    "Jobs that expired before they started (expires=), since the queue began.",
    QUEUE_LABELS,
    registry=REGISTRY,
)
sleeping = Gauge(
    "kubeq_queue_sleeping",
    "Jobs in a durable sleep or wait (kubeq.sleep, kubeq.wait_for) not due yet: not backlog.",
    QUEUE_LABELS,
    registry=REGISTRY,
)
rate_limited = Gauge(
    "kubeq_queue_rate_limited",
    "1 while a rate limit holds the queue's jobs back, else 0.",
    QUEUE_LABELS,
    registry=REGISTRY,
)
debounced = Gauge(
    "kubeq_queue_debounced",
    "Debounced jobs waiting for their window to pass (docs/patterns.md).",
    QUEUE_LABELS,
    registry=REGISTRY,
)
singleton_keys = Gauge(
    "kubeq_queue_singleton_keys",
    "Singleton keys held by a live job, waiting or running (docs/patterns.md).",
    QUEUE_LABELS,
    registry=REGISTRY,
)
batches_forming = Gauge(
    "kubeq_queue_batches_forming",
    "Batches open for more items, neither full nor due (docs/patterns.md).",
    QUEUE_LABELS,
    registry=REGISTRY,
)
batched_items = Gauge(
    "kubeq_queue_batched_items",
    "Items in batches not ended, not settled yet (a batch counts as one job elsewhere).",
    QUEUE_LABELS,
    registry=REGISTRY,
)
FLOW_GAUGES = {
    "debounced": debounced,
    "singleton_keys": singleton_keys,
    "batches_forming": batches_forming,
    "batched_items": batched_items,
}
"""The flow patterns' gauges, by the QueueStats field each is set from."""
fair_keys = Gauge(
    "kubeq_queue_fair_keys",
    "Fairness keys with ready jobs (docs/fairness.md).",
    QUEUE_LABELS,
    registry=REGISTRY,
)
fair_key_wait = Gauge(
    "kubeq_queue_fair_key_wait_seconds",
    "Seconds the next job of a fairness key has waited, for the spec.scaling.fairTopKeys keys "
    "that waited longest (a key that leaves the top loses its series).",
    [*QUEUE_LABELS, "key"],
    registry=REGISTRY,
)
fair_shown: dict[tuple[str, str, str], set[str]] = {}
"""(namespace, taskqueue, queue) -> the keys that have a fair_key_wait series now."""
workers_desired = Gauge(
    "kubeq_workers_desired",
    "Worker replicas the scaling policy asks for.",
    TQ_LABELS,
    registry=REGISTRY,
)
workers_current = Gauge(
    "kubeq_workers_current",
    "Worker pods that exist now (Deployment status.replicas).",
    TQ_LABELS,
    registry=REGISTRY,
)
workers_max = Gauge(
    "kubeq_workers_max",
    "spec.scaling.maxReplicas: the most workers the policy may ask for.",
    TQ_LABELS,
    registry=REGISTRY,
)
target_wait = Gauge(
    "kubeq_target_wait_seconds",
    "spec.scaling.targetWaitSeconds (absent when the TaskQueue sets none).",
    TQ_LABELS,
    registry=REGISTRY,
)
last_pass = Gauge(
    "kubeq_reconcile_last_success_timestamp_seconds",
    "When the operator last completed a pass of this TaskQueue's loop (Unix time).",
    TQ_LABELS,
    registry=REGISTRY,
)
scale_events = Counter(
    "kubeq_scale_events",
    "Scaling decisions that changed the replicas.",
    [*TQ_LABELS, "direction"],
    registry=REGISTRY,
)
redis_errors = Counter(
    "kubeq_redis_errors",
    "Failed reads of a TaskQueue's Redis (replicas were held).",
    TQ_LABELS,
    registry=REGISTRY,
)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serve /metrics on ``port`` in a daemon thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)


def record_queue(namespace: str, taskqueue: str, s: QueueStats) -> None:
    """One queue's gauges from its stats, read on a pass."""
    labels = (namespace, taskqueue, s.queue)
    backlog.labels(*labels).set(s.backlog)
    in_flight.labels(*labels).set(s.in_flight)
    oldest_age.labels(*labels).set(s.oldest_ready_age)
    expired.labels(*labels).set(s.expired)
    sleeping.labels(*labels).set(s.sleeping)
    for name, gauge in FLOW_GAUGES.items():
        gauge.labels(*labels).set(getattr(s, name))
    rate_limited.labels(*labels).set(int(s.rate_limited))


def forget(namespace: str, taskqueue: str, queues: list[str]) -> None:
    """Remove the series of one TaskQueue (it was deleted)."""
    for q in queues:
        for g in (
            backlog,
            in_flight,
            oldest_age,
            expired,
            sleeping,
            rate_limited,
            fair_keys,
            *FLOW_GAUGES.values(),
        ):
            with contextlib.suppress(KeyError):
                g.remove(namespace, taskqueue, q)
        for key in fair_shown.pop((namespace, taskqueue, q), set()):
            with contextlib.suppress(KeyError):
                fair_key_wait.remove(namespace, taskqueue, q, key)
    for g2 in (workers_desired, workers_current, workers_max, target_wait, last_pass):
        with contextlib.suppress(KeyError):
            g2.remove(namespace, taskqueue)
    for direction in ("up", "down"):
        with contextlib.suppress(KeyError):
            scale_events.remove(namespace, taskqueue, direction)
    with contextlib.suppress(KeyError):
        redis_errors.remove(namespace, taskqueue)
