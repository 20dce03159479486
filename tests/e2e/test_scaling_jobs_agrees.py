"""The Job-mode simulator (bench/scaling_jobs.py) is confirmed by the real thing on one
scenario: 6 jobs of 5 s into a Job-mode pool with ``maxReplicas: 4`` on the local control
plane (the operator's own process, the Job controller, pods run by the node agent), whose
workers take 4 s to start (their pods run, holding no job, for several operator passes: the
window in which KEDA ScaledJob creates duplicates, kedacore/keda#6157). A Job's start-up
(created -> its worker starts the job), a finished job's exit (-> its Job or pod is seen
finished), the jobs' duration and the delay to the first Job are measured here and given to
the simulator (its inputs); both must create exactly one Job per job (the second wave's 2
jobs have room for 4 Jobs: only counting the starting pods keeps it at 2), never more than 4
at once, and the simulated drain must be within 20 % of the measured one.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from types import ModuleType

import kubeq
from kubeq_operator import jobpods
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, queue_of, taskqueue
from tests.support.modules import load_bench

ROOT = Path(__file__).resolve().parents[2]
JOBS, SECONDS, MAX, IMPORT_SECONDS = 6, 5.0, 4, 4.0
TOLERANCE = 0.20
TQ, POOL = "jobsim", "sim"


def load_sim() -> ModuleType:
    return load_bench("scaling_jobs")


def observe(api: Api, ns: str, created: dict[str, float], finished: dict[str, float]) -> int:
    """Note each Job's first sighting and when it (or its pod) is first seen finished, as the
    operator classifies it; the Jobs not finished now."""
    from kubernetes import client

    now = time.time()
    selector = jobpods.selector(TQ, POOL)
    items = client.BatchV1Api(api.client).list_namespaced_job(ns, label_selector=selector).items
    pods = api.core.list_namespaced_pod(ns, label_selector=selector).items
    for j in items:
        created.setdefault(j.metadata.name, now)
        if j.status.succeeded or j.status.failed:
            finished.setdefault(j.metadata.name, now)
    for p in pods:
        if p.status.phase in ("Succeeded", "Failed"):
            finished.setdefault(p.metadata.labels.get("job-name", ""), now)
    return sum(1 for j in items if j.metadata.name not in finished)


def test_job_mode_on_the_cluster_matches_the_simulator(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns, q = k8s_namespace, queue_of(TQ, k8s_namespace)
    pool = {
        "name": POOL,
        "mode": "Job",
        "concurrency": 1,
        "job": {"ttlSecondsAfterFinished": 3600},
        "scaling": {"maxReplicas": MAX},
        "env": [{"name": "E2E_IMPORT_SECONDS", "value": str(IMPORT_SECONDS)}],
    }
    api.create_tq(taskqueue(TQ, ns, redis_url, pools=[pool]))
    app = kubeq.App(redis_url)
    key = f"{kubeq.defaults.PREFIX}:pools"
    wait_for(lambda: app.redis.hget(key, q), timeout=30, message="pools published")
    enqueued_at = time.time()
    app.enqueue_many(
        [
            kubeq.Call("e2e.work", (i,), {"seconds": SECONDS}, queue=q, worker_pool=POOL)
            for i in range(JOBS)
        ]
    )
    created: dict[str, float] = {}
    finished: dict[str, float] = {}
    most = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        most = max(most, observe(api, ns, created, finished))
        if app.redis.llen("e2e:runs") >= JOBS and len(finished) >= JOBS:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the jobs did not all run: {created}, {finished}")

    runs = [r.decode().split("|") for r in app.redis.lrange("e2e:runs", 0, -1)]
    assert sorted(int(r[0]) for r in runs) == list(range(JOBS)), "a job ran twice or not at all"
    assert len(created) == JOBS, f"{len(created)} Jobs for {JOBS} jobs: {sorted(created)}"
    job_of = {pod: pod.rsplit("-", 1)[0] for _, pod, _, _ in runs}
    assert set(job_of.values()) == set(created), (job_of, created)
    drained = max(float(r[3]) for r in runs) - enqueued_at
    # the simulator's inputs, measured
    startup = statistics.mean(float(r[2]) - created[job_of[r[1]]] for r in runs)
    exit_ = statistics.mean(finished[job_of[r[1]]] - float(r[3]) for r in runs)
    duration = statistics.mean(float(r[3]) - float(r[2]) for r in runs)
    lag = min(created.values()) - enqueued_at

    sim = load_sim()
    scenario = sim.Scenario(
        "e2e",
        "e2e",
        MAX,
        max(0.0, startup),
        0.0,
        lambda rng: [sim.Job(0.0, duration) for _ in range(JOBS)],
        horizon=600.0,
        exit=max(0.0, exit_),
        step=0.1,
    )
    kubeq_jobs = sim.KubeqJobs("kubeq", poll_seconds=0.5)
    kubeq_jobs.phase = lag
    r = sim.simulate(scenario, kubeq_jobs)
    print(
        f"\nJOBSIM measured: {len(created)} Jobs, peak {most}, drained {drained:.1f}s; "
        f"simulated: {r.created} Jobs, peak {r.peak_pods}, drained {r.drain}s (start-up "
        f"{startup:.2f}s, exit {exit_:.2f}s, job {duration:.2f}s, first Job after {lag:.2f}s)"
    )
    assert startup >= IMPORT_SECONDS  # the workers did start slowly
    assert r.created == JOBS and r.idle == 0
    assert most <= MAX and r.peak_pods <= MAX
    assert r.drain is not None
    assert abs(drained - r.drain) <= TOLERANCE * r.drain, (drained, r)
    app.close()
