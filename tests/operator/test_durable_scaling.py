"""Scale to zero and back on the control plane while a TaskQueue's only job sleeps or waits.

The real operator process against the real API server and a real Redis. The TaskQueue's
pods select a node that does not exist, so its replicas follow the queue alone; the job is
run by a real worker process on this machine (`kubeq worker durtasks --burst`, the redis
tier's durable tasks), which exits once nothing is ready and nothing runs. While the job
sleeps or waits for a signal it is neither backlog nor in flight: the Deployment goes to 0
replicas; when the signal arrives, or the sleep falls due, the job is backlog again and the
Deployment comes back to 1; a worker then finishes the job from its recorded steps.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import kubeq
from kubeq_operator.names import deployment_name
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, queue_of, taskqueue
from tests.redis.durable_workers import DurableWorker

pytestmark = pytest.mark.cluster

NAP_SECONDS = 25.0
"""The sleep: long enough for the fleet to reach zero while it lasts (about 5 s here)."""


def replicas(api: Api, ns: str) -> int:
    dep = api.deployment(ns, deployment_name("dur"))
    return -1 if dep is None else int(dep.spec.replicas or 0)


def run_burst(redis_url: str, queue: str, log: Path) -> None:
    """One worker process that runs what is ready, then exits (as a pod scaled in would)."""
    worker = DurableWorker(redis_url, log, ["-q", queue, "--burst", "--concurrency", "1"])
    try:
        assert worker.wait(timeout=120) == 0, worker.log()[-3000:]
    finally:
        worker.stop()


def test_a_sleeping_or_waiting_job_lets_the_fleet_scale_to_zero_and_back(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str, tmp_path: Path
) -> None:
    ns = k8s_namespace
    q = queue_of("dur", ns)
    api.create_tq(
        taskqueue(
            "dur",
            ns,
            redis_url,
            worker={"podTemplate": {"spec": {"nodeSelector": {"kubeq.dev/none": "x"}}}},
            scaling={
                "jobsPerReplica": 1,
                "pollSeconds": 0.5,
                "idleSecondsBeforeZero": 2,
                "scaleDown": {"stabilizationSeconds": 2, "periodSeconds": 1, "maxPodsPerStep": 5},
            },
        )
    )
    wait_for(lambda: replicas(api, ns) == 0, timeout=60, message="the Deployment at 0")
    app = kubeq.App(redis_url)
    queue = app.queue(q)
    tag = f"{ns}-scale"
    seen: list[Any] = []  # (replicas, sleeping jobs) at each look

    def at(n: int, what: str, timeout: float = 60) -> None:
        def check() -> bool:
            seen.append((replicas(api, ns), queue.stats().sleeping))
            return replicas(api, ns) == n if n == 0 else replicas(api, ns) >= n

        wait_for(check, timeout=timeout, interval=0.3, message=lambda: f"{what}; {seen[-5:]}")

    # a wait for a signal
    job = queue.enqueue("durtasks.approver", tag, f"go:{tag}")
    at(1, "the fleet up for the new job")
    run_burst(redis_url, q, tmp_path / "w1.log")  # asks, then waits: the run ends
    assert job.status() == "sleeping" and job.steps() == {"ask": 1}
    at(0, "the fleet at zero while the job waits for its signal")
    stats = queue.stats()
    assert (stats.backlog, stats.in_flight, stats.sleeping) == (0, 0, 1)
    assert app.signal(f"go:{tag}", {"ok": True}, queue=q) == 1
    at(1, "the fleet back up once the signal arrived")
    run_burst(redis_url, q, tmp_path / "w2.log")
    assert job.result(timeout=30) == {"ok": True}
    steps = job.steps()
    assert (steps["ask"], steps["decide"]) == (1, 1)  # each step's effect once
    at(0, "the fleet at zero once the job finished")

    # a durable sleep
    nap = queue.enqueue("durtasks.napper", tag, NAP_SECONDS)
    at(1, "the fleet up for the napper")
    run_burst(redis_url, q, tmp_path / "w3.log")  # a step, then the sleep: the run ends
    until = nap.info().sleep_until
    assert nap.status() == "sleeping" and until is not None
    at(0, f"the fleet at zero while the job sleeps ({NAP_SECONDS} s)", timeout=NAP_SECONDS)
    assert time.time() < until, "the fleet reached zero only after the sleep fell due"
    assert queue.stats().backlog == 0
    at(1, "the fleet back up once the sleep fell due", timeout=NAP_SECONDS + 60)
    run_burst(redis_url, q, tmp_path / "w4.log")
    assert nap.result(timeout=30) == [1, 1]  # each step's effect once
    app.close()
