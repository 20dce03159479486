"""A `kubeq worker`, started as the command line starts it, imports only what running jobs
need: not the other commands' table printing, not the Prometheus client unless it serves
``/metrics``, not the process pool unless a task runs in one, not the cron parser, and none
of the operator, dashboard or gateway stacks. Every module a worker holds stays in its
memory for its whole life (bench/README.md, worker memory), so a new import of one of these
on the worker's path is caught here rather than in the next benchmark.
"""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import qtasks
import redis.asyncio

import kubeq
from kubeq.store import workers
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker
from tests.support.redisserver import free_port

NOT_ON_THE_WORKER_PATH = {
    "rich": "the tables of the other kubeq commands",
    "kubeq.cli.commands": "the queue commands (stats, enqueue, ...)",
    "kubeq.cli.output": "the commands' table and JSON output",
    "kubeq.cli.jobs": "kubeq job / dlq / limit",
    "kubeq.cli.search": "kubeq jobs",
    "kubeq.cli.schedules": "kubeq schedule",
    "prometheus_client": "/metrics, served only with --metrics-port",
    "http.server": "the /metrics and /healthz server",
    "pebble": "the process pool (--pool process, or a task's pool='process')",
    "multiprocessing": "the process pool",
    "opentelemetry.propagate": "trace propagation, used only by an application that traces",
    "croniter": "reading a cron schedule",
    "dateutil": "croniter's dependency",
    "zoneinfo": "reading a schedule's time zone",
    "kubeq_operator": "the operator",
    "kopf": "the operator",
    "kubernetes": "the operator, dashboard and gateway",
    "kubeq.dashboard": "kubeq dashboard",
    "kubeq.gateway": "kubeq gateway",
    "starlette": "the dashboard and gateway",
    "uvicorn": "the dashboard and gateway",
}


def _run(app: kubeq.App, call: kubeq.Call) -> Any:
    return app.enqueue_many([call])[0].result(timeout=120)


def _loaded(app: kubeq.App) -> set[str]:
    return set(_run(app, qtasks.modules_loaded.s()))


def _heavy(loaded: set[str]) -> dict[str, str]:
    return {
        name: why
        for name, why in NOT_ON_THE_WORKER_PATH.items()
        if any(m == name or m.startswith(name + ".") for m in loaded)
    }


def test_an_idle_worker_has_imported_none_of_the_modules_it_does_not_need(
    start_worker: StartWorker, app: kubeq.App, redis_url: str
) -> None:
    start_worker("--queue", "default")
    for _ in range(3):  # a few jobs run: nothing they pass through loads one either
        assert _run(app, qtasks.add.s(2, 3)) == 5
    loaded = _loaded(app)
    assert "kubeq.worker.loop" in loaded  # the task ran inside a kubeq worker
    assert _heavy(loaded) == {}, "an idle `kubeq worker` imported modules it never needs"

    # what the worker's document (the Workers page) counts does not need Prometheus
    async def documents() -> list[dict[str, object]]:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            return await workers.read_all(client)
        finally:
            await client.aclose()

    def counted() -> object:
        docs = asyncio.run(documents())
        return docs and docs[0].get("counts", {}).get("default", {}).get("finished", 0) >= 4

    wait_until(counted, timeout=60, what="the worker's document counting its 4 finished jobs")


def test_a_worker_loads_the_prometheus_client_and_the_process_pool_when_they_are_asked_for(
    start_worker: StartWorker, app: kubeq.App
) -> None:
    port = free_port()
    start_worker("--queue", "default", "--metrics-port", str(port))
    assert _run(app, qtasks.add.s(2, 3)) == 5
    assert isinstance(_run(app, qtasks.cpu_pid.s()), int)  # pool="process"
    loaded = _loaded(app)
    assert {"prometheus_client", "pebble"} <= loaded

    def scraped() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            return str(resp.read().decode())

    def finished_counted() -> bool:
        lines = scraped().splitlines()
        return any(ln.startswith("kubeq_jobs_total{") and "finished" in ln for ln in lines)

    wait_until(finished_counted, timeout=60, what="kubeq_jobs_total on /metrics")
