"""End to end: a TaskQueue, the operator process, real worker pods (node agent), real Redis.

1. 500 jobs of ~50 ms: the Deployment goes 0 -> N -> 0 and every result is there.
2. Long jobs on some workers, others idle: the scale-down removes the idle pods first and
   no job is interrupted or run twice.

Timings are recorded, printed and appended to ``$KUBEQ_E2E_TIMINGS`` (default
``<tmp>/kubeq-e2e-timings.jsonl``), never asserted.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

import kubeq
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, Timeline, queue_of, taskqueue

TIMINGS = Path(
    os.environ.get("KUBEQ_E2E_TIMINGS", Path(tempfile.gettempdir()) / "kubeq-e2e-timings.jsonl")
)


def report(name: str, data: dict[str, Any]) -> None:
    line = json.dumps({"test": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ"), **data})
    print(f"\nTIMINGS {line}")
    with TIMINGS.open("a") as f:
        f.write(line + "\n")


class Watcher:
    """Samples the Deployment and its pods; remembers when things happened."""

    def __init__(self, api: Api, ns: str, tq: str, timeline: Timeline) -> None:
        self.api, self.ns, self.tq, self.t = api, ns, tq, timeline
        self.max_replicas = 0
        self.pod_first_seen: dict[str, float] = {}
        self.pod_deleting_at: dict[str, float] = {}
        self.pod_costs: dict[str, set[str]] = {}
        self.series: list[tuple[float, int, int]] = []

    def sample(self) -> tuple[int, int, int]:
        """(Deployment replicas, pods not being deleted, pods at all)."""
        dep = self.api.deployment(self.ns, f"{self.tq}-worker")
        replicas = (dep.spec.replicas or 0) if dep else 0
        now = time.time()
        pods = self.api.pods(self.ns, self.tq)
        alive = 0
        for p in pods:
            name = p.metadata.name
            self.pod_first_seen.setdefault(name, now)
            cost = (p.metadata.annotations or {}).get("controller.kubernetes.io/pod-deletion-cost")
            if cost is not None:
                self.pod_costs.setdefault(name, set()).add(cost)
            if p.metadata.deletion_timestamp is not None:
                self.pod_deleting_at.setdefault(name, now)
            else:
                alive += 1
        self.max_replicas = max(self.max_replicas, replicas)
        self.series.append((round(time.monotonic() - self.t.t0, 1), replicas, alive))
        return replicas, alive, len(pods)


def test_500_jobs_scale_from_zero_and_back(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    app = kubeq.App(redis_url)
    api.create_tq(
        taskqueue(
            "burst",
            ns,
            redis_url,
            worker={"concurrency": 4},
            scaling={
                "minReplicas": 0,
                "maxReplicas": 5,
                "jobsPerReplica": 4,
                "pollSeconds": 1,
                "idleSecondsBeforeZero": 5,
                "scaleDown": {"stabilizationSeconds": 5, "periodSeconds": 1, "maxPodsPerStep": 5},
            },
        )
    )
    wait_for(lambda: api.deployment(ns, "burst-worker"), timeout=30, message="Deployment")
    assert api.deployment(ns, "burst-worker").spec.replicas == 0

    t = Timeline()
    w = Watcher(api, ns, "burst", t)
    enqueued_at = time.time()
    jobs = app.enqueue_many(
        [
            kubeq.Call("e2e.work", (i,), {"seconds": 0.05}, queue=queue_of("burst", ns))
            for i in range(500)
        ]
    )
    t.mark("enqueued")

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        replicas, alive, total = w.sample()
        if replicas > 0:
            t.mark("replicas>0")
        if alive > 0:
            t.mark("first_pod")
        if "all_done" not in t.marks and app.redis.llen("e2e:runs") >= 500:
            t.mark("all_done")
        if "all_done" in t.marks and replicas == 0:
            t.mark("zero")
            if total == 0:
                t.mark("pods_gone")
                break
        time.sleep(0.2)
    assert "pods_gone" in t.marks, f"did not go back to zero pods: {t.marks} {w.series[-5:]}"

    results = [j.result(timeout=10) for j in jobs]  # every result is there
    assert results == list(range(500))
    runs = [r.decode().split("|") for r in app.redis.lrange("e2e:runs", 0, -1)]
    assert sorted(int(r[0]) for r in runs) == list(range(500)), "a job ran twice or not at all"
    assert 1 <= w.max_replicas <= 5
    pods_used = {r[1] for r in runs}
    report(
        "burst500",
        {
            "enqueue_to_replicas_gt0_s": t.marks["replicas>0"],
            "enqueue_to_pods_created_s": t.marks.get("first_pod"),
            "enqueue_to_first_job_started_s": round(
                min(float(r[2]) for r in runs) - enqueued_at, 2
            ),
            "enqueue_to_all_done_s": t.marks["all_done"],
            "drained_to_zero_replicas_s": round(t.marks["zero"] - t.marks["all_done"], 2),
            "drained_to_zero_pods_s": round(t.marks["pods_gone"] - t.marks["all_done"], 2),
            "max_replicas": w.max_replicas,
            "pods_that_ran_jobs": len(pods_used),
        },
    )
    app.close()


def test_scale_down_removes_idle_pods_first(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    app = kubeq.App(redis_url)
    long_s = 20.0
    api.create_tq(
        taskqueue(
            "drain",
            ns,
            redis_url,
            worker={"concurrency": 1, "terminationGracePeriodSeconds": 60},
            scaling={
                "minReplicas": 0,
                "maxReplicas": 4,
                "jobsPerReplica": 1,
                "pollSeconds": 0.5,
                "idleSecondsBeforeZero": 5,
                "scaleDown": {"stabilizationSeconds": 4, "periodSeconds": 1, "maxPodsPerStep": 4},
            },
        )
    )
    wait_for(lambda: api.deployment(ns, "drain-worker"), timeout=30, message="Deployment")
    t = Timeline()
    w = Watcher(api, ns, "drain", t)
    q = queue_of("drain", ns)
    # FIFO: the two long jobs go to the first two workers (concurrency 1 each)
    jobs = app.enqueue_many(
        [kubeq.Call("e2e.work", (i,), {"seconds": long_s}, queue=q) for i in (0, 1)]
        + [kubeq.Call("e2e.work", (i,), {"seconds": 0.05}, queue=q) for i in (2, 3)]
    )
    t.mark("enqueued")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        replicas, _, total = w.sample()
        if replicas == 4:
            t.mark("up_to_4")
        if "up_to_4" in t.marks and 0 < replicas < 4:
            t.mark("scaled_down")
        if "scaled_down" in t.marks and replicas == 0 and total == 0:
            t.mark("pods_gone")
            break
        time.sleep(0.2)
    assert "pods_gone" in t.marks, f"{t.marks} {w.series[-5:]}"

    assert [j.result(timeout=10) for j in jobs] == [0, 1, 2, 3]
    runs = [r.decode().split("|") for r in app.redis.lrange("e2e:runs", 0, -1)]
    assert sorted(int(r[0]) for r in runs) == [0, 1, 2, 3], "a job ran twice or not at all"
    long_runs = {r[1]: float(r[3]) for r in runs if int(r[0]) in (0, 1)}
    assert len(long_runs) == 2, f"both long jobs ran on one pod: {runs}"
    # the pods running the long jobs were not told to stop before their job ended
    for pod, ended in long_runs.items():
        deleting = w.pod_deleting_at.get(pod)
        assert deleting is None or deleting >= ended, (
            f"busy pod {pod} was deleted at {deleting} before its job ended at {ended}"
        )
        assert any(int(c) > 0 for c in w.pod_costs.get(pod, set())), w.pod_costs
    # the pods removed by the first scale-down were the idle ones
    first_deleted = sorted(w.pod_deleting_at.items(), key=lambda kv: kv[1])
    scale_down_victims = [p for p, at in first_deleted if at < min(long_runs.values())]
    assert scale_down_victims, f"no pod was removed while the long jobs ran: {w.series}"
    assert not set(scale_down_victims) & set(long_runs)
    job_ended = max(long_runs.values())
    report(
        "drain_aware",
        {
            "enqueue_to_scale_down_s": t.marks["scaled_down"],
            "idle_pods_removed_first": scale_down_victims,
            "busy_pods": sorted(long_runs),
            "long_jobs_done_to_zero_pods_s": round(
                t.marks["pods_gone"] - (job_ended - time.time() + time.monotonic() - t.t0), 2
            ),
        },
    )
    app.close()


@pytest.fixture(autouse=True)
def _clean_runs(redis_url: str) -> None:
    """The redis_url fixture flushes Redis for each test; nothing else to do."""
