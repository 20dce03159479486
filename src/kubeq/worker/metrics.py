"""Worker metrics (Prometheus) and the health endpoint, on one small HTTP server.

``/metrics`` serves the names docs/architecture.md ("Metrics") keeps stable; ``/healthz``
answers 503 when the worker has stopped consuming (its loop stalled, or Redis has been
unreachable too long) even though the process is alive, so Kubernetes' liveness probe
restarts a wedged worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# No ``*_created`` series: they double the series count, and ``kubeq_jobs_created`` reads like
# a number of jobs. Process-wide in prometheus_client, so the operator's module does the same.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in prometheus_client

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class WorkerMetrics:
    """The worker's metrics, in a registry of their own (tests can run several workers)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.jobs = Counter(
            "kubeq_jobs",
            "Jobs settled by this worker, by outcome: finished, retried, failed (dead-lettered), "
            "requeued (handed back on shutdown), released (its process-pool child died), "
            "aborted (stopped by job.abort() while it ran).",
            ["queue", "task", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "kubeq_job_duration_seconds",
            "Seconds one execution of a task took.",
            ["queue", "task"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.wait = Histogram(
            "kubeq_job_wait_seconds",
            "Seconds a job waited ready in Redis before a worker took it.",
            ["queue"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "kubeq_jobs_in_progress",
            "Jobs this worker holds now (running or about to run).",
            ["queue"],
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "kubeq_worker_redis_errors",
            "Redis round trips of the worker loop that failed.",
            registry=self.registry,
        )


HealthCheck = Callable[[], tuple[bool, str]]


def serve(
    metrics: WorkerMetrics, health: HealthCheck, port: int, host: str = "0.0.0.0"
) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on ``port`` from a daemon thread; returns the server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body, status, ctype = generate_latest(metrics.registry), 200, CONTENT_TYPE_LATEST
            elif self.path.startswith("/healthz") or self.path.startswith("/livez"):
                ok, message = health()
                body, status, ctype = (message + "\n").encode(), 200 if ok else 503, "text/plain"
            else:
                body, status, ctype = b"not found\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # probes every few seconds would drown the worker's log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="kubeq-metrics", daemon=True).start()
    return server
