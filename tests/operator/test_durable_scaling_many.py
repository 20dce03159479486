"""Scale to zero and back on the control plane while 500 jobs wait for signals.

The smaller form of bench/durable_scale.py (which runs 10,000): the real operator process, the
real API server, a real Redis; the TaskQueue's pods select a node that does not exist, so its
replicas follow the queue alone, and the jobs are run by real burst worker processes on this
machine (`kubeq worker durtasks --burst`), which exit once nothing is ready and nothing runs.
Each job records a step, waits for one of ten signal keys, then records another step; the
steps' side effects are counted per job in Redis (the ledger).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

import kubeq
from kubeq_operator.names import deployment_name
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, queue_of, taskqueue
from tests.redis.durable_workers import DurableWorker

pytestmark = pytest.mark.cluster

JOBS, KEYS, PER_REPLICA, MAX_REPLICAS = 500, 10, 100, 3


def replicas(api: Api, ns: str) -> int:
    dep = api.deployment(ns, deployment_name("many"))
    return -1 if dep is None else int(dep.spec.replicas or 0)


def run_burst(redis_url: str, queue: str, logs: Path, name: str) -> None:
    """Two worker processes run what is ready, then exit (as pods scaled in would)."""
    args = ["-q", queue, "--burst", "--concurrency", "8"]
    workers = [DurableWorker(redis_url, logs / f"{name}-{i}.log", args) for i in range(2)]
    try:
        for w in workers:
            assert w.wait(timeout=240) == 0, w.log()[-3000:]
    finally:
        for w in workers:
            w.stop()


def ran(r: redis.Redis, tags: list[str], step: str) -> dict[int, int]:
    """How many jobs ran ``step`` n times, by n."""
    counts: dict[int, int] = {}
    for v in r.mget([f"test:eff:{t}:{step}" for t in tags]):
        counts[int(v or 0)] = counts.get(int(v or 0), 0) + 1
    return counts


def test_500_waiting_jobs_hold_no_slot_and_the_fleet_scales_to_zero_and_back(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str, tmp_path: Path
) -> None:
    ns = k8s_namespace
    q = queue_of("many", ns)
    api.create_tq(
        taskqueue(
            "many",
            ns,
            redis_url,
            worker={"podTemplate": {"spec": {"nodeSelector": {"kubeq.dev/none": "x"}}}},
            scaling={
                "maxReplicas": MAX_REPLICAS,
                "jobsPerReplica": PER_REPLICA,
                "pollSeconds": 0.5,
                "idleSecondsBeforeZero": 2,
                "scaleDown": {"stabilizationSeconds": 2, "periodSeconds": 1, "maxPodsPerStep": 5},
            },
        )
    )
    wait_for(lambda: replicas(api, ns) == 0, timeout=60, message="the Deployment at 0")
    app = kubeq.App(redis_url)
    r = redis.Redis.from_url(redis_url)
    queue = app.queue(q)
    tags = [f"{ns}-{i}" for i in range(JOBS)]
    keys = [f"go:{ns}:{k}" for k in range(KEYS)]
    seen: list[Any] = []  # (replicas, stats) at each look

    def at(ok: Any, what: str, timeout: float = 120) -> None:
        def check() -> bool:
            n = replicas(api, ns)
            seen.append((n, queue.stats().sleeping))
            return bool(ok(n))

        wait_for(check, timeout=timeout, interval=0.3, message=lambda: f"{what}; {seen[-5:]}")

    app.enqueue_many(
        kubeq.Call("durtasks.approver", (tag, keys[i % KEYS]), queue=q)
        for i, tag in enumerate(tags)
    )
    at(lambda n: n == MAX_REPLICAS, "the fleet at maxReplicas for the backlog")
    run_burst(redis_url, q, tmp_path, "wait")  # each job asks, then waits: the runs end
    stats = queue.stats()
    assert (stats.sleeping, stats.backlog, stats.in_flight, stats.live_workers) == (JOBS, 0, 0, 0)
    assert ran(r, tags, "ask") == {1: JOBS} and ran(r, tags, "decide") == {0: JOBS}
    at(lambda n: n == 0, "the fleet at zero while the jobs wait for their signals")
    assert queue.stats().sleeping == JOBS

    assert sum(app.signal(k, {"ok": k}, queue=q) for k in keys) == JOBS
    stats = queue.stats()
    assert (stats.sleeping, stats.backlog) == (0, JOBS)
    at(lambda n: n == MAX_REPLICAS, "the fleet back at maxReplicas once the signals arrived")
    run_burst(redis_url, q, tmp_path, "finish")
    stats = queue.stats()
    assert (stats.sleeping, stats.backlog, stats.in_flight, stats.dead) == (0, 0, 0, 0)
    assert ran(r, tags, "ask") == {1: JOBS} and ran(r, tags, "decide") == {1: JOBS}
    at(lambda n: n == 0, "the fleet at zero once every job finished")
    r.close()
    app.close()
