"""The simulator (bench/scaling_sim.py) is confirmed by the real thing on one trace.

A burst of 320 one-second jobs into an idle TaskQueue with ``targetWaitSeconds`` and a quick
scale-down, on the local control plane with real worker pods. The pods' start-up time, the
jobs' duration and a removed pod's shutdown are measured here and given to the simulator
(they are its inputs, not outputs); the simulator then runs the same TaskQueue spec through
the same policy. The measured p95 wait and replica-seconds must be within 20 % of the
simulated ones.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from types import ModuleType

import kubeq
from kubeq_operator.names import deployment_name
from kubeq_operator.spec import parse
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, queue_of, taskqueue
from tests.support.modules import load_bench

ROOT = Path(__file__).resolve().parents[2]
JOBS, SECONDS, CONCURRENCY, MAX = 320, 1.0, 4, 4
TOLERANCE = 0.20


def load_sim() -> ModuleType:
    return load_bench("scaling_sim")


def test_a_burst_on_the_cluster_matches_the_simulator(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns, name = k8s_namespace, "simcheck"
    body = taskqueue(
        name,
        ns,
        redis_url,
        worker={"concurrency": CONCURRENCY},
        scaling={
            "minReplicas": 0,
            "maxReplicas": MAX,
            "pollSeconds": 1,
            "targetWaitSeconds": 10,
            "idleSecondsBeforeZero": 5,
            "scaleDown": {"stabilizationSeconds": 5, "periodSeconds": 1, "maxPodsPerStep": 5},
        },
    )
    api.create_tq(body)
    wait_for(lambda: api.deployment(ns, deployment_name(name)), timeout=30, message="Deployment")
    app = kubeq.App(redis_url)
    enqueued_at = time.time()
    app.enqueue_many(
        [
            kubeq.Call("e2e.work", (i,), {"seconds": SECONDS}, queue=queue_of(name, ns))
            for i in range(JOBS)
        ]
    )
    first_seen: dict[str, float] = {}
    deleting_at: dict[str, float] = {}
    gone_at: dict[str, float] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        now = time.time()
        listed = api.pods(ns, name)
        pods = {p.metadata.name for p in listed}
        for p in pods:
            first_seen.setdefault(p, now)
        for pod in listed:
            if pod.metadata.deletion_timestamp is not None:
                deleting_at.setdefault(pod.metadata.name, now)
        for p in first_seen:
            if p not in pods:
                gone_at.setdefault(p, now)
        done = app.redis.llen("e2e:runs") >= JOBS
        if done and first_seen and not pods:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the burst did not finish and scale to zero: {first_seen}")

    runs = [r.decode().split("|") for r in app.redis.lrange("e2e:runs", 0, -1)]
    assert sorted(int(r[0]) for r in runs) == list(range(JOBS)), "a job ran twice or not at all"
    waits = sorted(float(r[2]) - enqueued_at for r in runs)
    p95 = waits[int(0.95 * len(waits)) - 1]
    replica_seconds = sum(gone_at[p] - first_seen[p] for p in first_seen)
    first_start = {}
    for _, pod, started, _ in runs:
        first_start[pod] = min(first_start.get(pod, 1e18), float(started))
    # the simulator's inputs, measured: how long a pod takes to take its first job after it
    # appears (from enqueue for the delay to the first pod too), and how long a job runs
    startup = statistics.median(first_start[p] - first_seen[p] for p in first_start)
    lag = min(first_seen.values()) - enqueued_at  # enqueue -> the first pod exists
    duration = statistics.mean(float(r[3]) - float(r[2]) for r in runs)
    # and how long a removed (idle) pod stays: its SIGTERM handling and the node's deletion,
    # seconds the replica-seconds count (a loaded node took 8 s once, a quiet one under 1 s)
    shutdown = statistics.median(gone_at[p] - deleting_at[p] for p in deleting_at)

    sim = load_sim()
    world = sim.World(
        startup=startup + lag, concurrency=CONCURRENCY, max_replicas=MAX, shutdown=shutdown
    )
    trace = sim.Trace(
        "burst", "burst", 600, lambda rng: [sim.Job(0.0, duration) for _ in range(JOBS)]
    )
    scaler = sim.Kubeq("kubeq", parse(body["spec"]).scaling, world)
    simulated = sim.simulate(trace, scaler, world, seed=1)
    measured = {"p95_wait_s": round(p95, 2), "replica_seconds": round(replica_seconds, 1)}
    expected = {"p95_wait_s": simulated.p95, "replica_seconds": simulated.replica_seconds}
    print(
        f"\nSIMCHECK measured {measured} simulated {expected} (startup {startup:.2f}s + "
        f"lag {lag:.2f}s, job {duration:.3f}s, shutdown {shutdown:.2f}s, "
        f"{len(first_seen)} pods)"
    )
    for key, value in measured.items():
        assert abs(value - expected[key]) <= TOLERANCE * expected[key], (key, measured, expected)
    # `kubectl describe tq` explains each decision in one line with its numbers
    lines = [e.message for e in api.events(ns, name) if e.reason in ("ScaleDown", "ScaleToZero")]
    assert any("targetWait=10s rate=" in m and "oldestWait=" in m for m in lines), lines
    app.close()
