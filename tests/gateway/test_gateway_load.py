"""1,000 concurrent HTTP enqueues through the gateway all land, each once; the test prints
the gateway's enqueue latency (p50/p99) beside the Python client's one-job enqueue on the
same Redis, and writes them to the results file ``KUBEQ_GATEWAY_LOAD_RESULTS`` names, if it
does (bench/README.md's gateway table is rendered from it by bench/report.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis

import kubeq
from tests.gateway.conftest import CACHE_SECONDS, World

JOBS = 1000
CALLERS = 32


def _quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def test_a_thousand_concurrent_enqueues_land_once(world: World) -> None:
    fast = world.gateway  # its rate bound is far above 1,000 requests
    alice = world.token("alice")
    queue = world.queue("tq-a")
    r = redis.Redis.from_url(world.redis_url)
    before = r.zcard(f"kubeq:{{{queue}}}:ready")

    def post(i: int) -> tuple[int, float]:
        start = time.perf_counter()
        status, _ = fast.call(
            "POST",
            world.jobs("tq-a"),
            {"task": "qtasks.add", "args": [i, i], "id": f"l-{i}"},
            alice,
        )
        return status, time.perf_counter() - start

    post(-1)  # the first call reviews the token and RBAC; later ones hit the cache
    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        results = list(pool.map(post, range(JOBS)))
    assert [s for s, _ in results] == [201] * JOBS
    assert r.zcard(f"kubeq:{{{queue}}}:ready") - before == JOBS + 1
    for i in (0, JOBS // 2, JOBS - 1):
        assert r.hget(f"kubeq:{{{queue}}}:job:l-{i}", "status") == b"queued"
    http50, http99 = _quantiles([t for _, t in results])

    app = kubeq.App(world.redis_url)
    direct = []
    for i in range(JOBS):
        start = time.perf_counter()
        app.enqueue_many([kubeq.Call("qtasks.add", (i, i), job_id=f"d-{i}")], queue=queue)
        direct.append(time.perf_counter() - start)
    app.close()
    py50, py99 = _quantiles(direct)
    print(
        f"\ngateway enqueue ({CALLERS} concurrent callers): "
        f"p50 {http50:.1f} ms, p99 {http99:.1f} ms; "
        f"Python client (one job, sequential): p50 {py50:.2f} ms, p99 {py99:.2f} ms"
    )
    if out := os.environ.get("KUBEQ_GATEWAY_LOAD_RESULTS"):
        load = os.getloadavg()[0]
        figures = {
            "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} cores shared with other work, load {load:.1f}",
            "jobs": JOBS,
            "callers": CALLERS,
            "review_cache_s": CACHE_SECONDS,
            "gateway": {"p50_ms": http50, "p99_ms": http99},
            "python": {"p50_ms": py50, "p99_ms": py99},
        }
        Path(out).write_text(json.dumps(figures, indent=1) + "\n")
