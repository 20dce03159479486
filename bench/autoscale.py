"""The autoscaler's reaction time on the local control plane (hack/cluster), and KEDA's
figures computed from its documentation.

    .venv/bin/python bench/autoscale.py [--trials 20] [--cpu-seconds 30]

Reuses the operator engineer's machinery: ``localcluster`` (starts the control plane, or
reuses the one running for this checkout and leaves it running), ``tests/operator/opsupport``
(``OperatorProcess`` runs ``python -m kubeq_operator``, the CRD, the TaskQueue manifest whose
pods run ``kubeq worker e2e_tasks``) and ``bench/operator_many_taskqueues.py`` for the CPU
per TaskQueue. Prints one JSON line.

From zero: a TaskQueue at 0 replicas (minReplicas 0, pollSeconds 1, stabilization at its
minimum: idleSecondsBeforeZero 0, scaleDown stabilizationSeconds 0, periodSeconds 0); enqueue
one short job at t0; t_up = when the Deployment's spec.replicas is first > 0 (read every
20 ms); t_done = when the job finished (its result); t_zero = when spec.replicas is 0 again.
``from_zero`` = t_up - t0, ``to_zero`` = t_zero - t_done.
From one: a second TaskQueue with minReplicas 1 and jobsPerReplica 1; enqueue 3 jobs of
1 s at t0; ``from_one`` = first time spec.replicas > 1, minus t0; then wait for 1 again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def keda_from_docs() -> dict[str, Any]:
    """KEDA with its defaults, computed from its documentation (not measured).

    ScaledObject spec: pollingInterval 30 s (how often KEDA checks each trigger; it alone
    activates 0 -> 1), cooldownPeriod 300 s (after the last active trigger before scaling
    1 -> 0). From 1 up the HPA scales, on kube-controller-manager's
    --horizontal-pod-autoscaler-sync-period (15 s default), reading the metric through
    KEDA's metrics adapter; HPA's default scale-up stabilization is 0 s.
    A backlog appearing at a random moment waits on average half an interval.
    """
    polling, cooldown, hpa_sync = 30.0, 300.0, 15.0
    return {
        "from_zero_p50_s": polling / 2,
        "from_one_p50_s": hpa_sync / 2,
        "to_zero_p50_s": cooldown + polling / 2,
        "cpu_percent_per_taskqueue": None,
        "basis": "pollingInterval 30 s (p50 = 15 s), HPA sync period 15 s (p50 = 7.5 s), "
        "cooldownPeriod 300 s + half a polling interval; computed from KEDA's and "
        "Kubernetes' documented defaults, not measured",
    }


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--cpu-seconds", type=float, default=30.0)
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument(
        "--merge",
        default=None,
        help="put the result into this results/<date>.json (its autoscale table too)",
    )
    a = ap.parse_args()
    # a control plane of our own (free ports, its own state dir), so the bench neither uses
    # nor stops the one another engineer's tests run on; KUBEQ_CLUSTER_DIR overrides it
    os.environ.setdefault(
        "KUBEQ_CLUSTER_DIR", str(Path(tempfile.gettempdir()) / "kubeq-bench-cluster")
    )
    sys.path[:0] = [str(ROOT / "hack" / "cluster"), str(ROOT)]
    from kubernetes import client, config

    import kubeq
    from localcluster.cluster import down, up
    from tests.operator.opsupport import Api, OperatorProcess, install_crd, queue_of, taskqueue
    from tests.support.redisserver import RedisServer

    info, started = up()
    work = Path(tempfile.mkdtemp(prefix="kubeq-bench-autoscale-"))
    server = RedisServer(work / "redis")
    server.start()
    api_client = config.new_client_from_config(config_file=info.kubeconfig, persist_config=False)
    api = Api(api_client)
    ns = f"bench-as-{int(time.time())}"

    def kubectl(*args: str, check: bool = False) -> Any:
        return subprocess.run(
            [str(Path(info.bin_dir) / "kubectl"), *args],
            text=True,
            capture_output=True,
            env=info.kubectl_env(),
            check=check,
        )

    def replicas(name: str) -> int:
        dep = api.deployment(ns, f"{name}-worker")
        return int(dep.spec.replicas or 0) if dep else -1

    def wait(pred: Any, timeout: float, what: str, step: float = 0.02) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return time.monotonic()
            time.sleep(step)
        raise TimeoutError(what)

    out: dict[str, Any] = {}
    op = None
    app = kubeq.App(server.url)
    try:
        install_crd(kubectl)
        api.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        op = OperatorProcess(info.kubeconfig, work / "operator.log")
        minimal = {"stabilizationSeconds": 0, "periodSeconds": 0, "maxPodsPerStep": 10}
        api.create_tq(
            taskqueue(
                "zero",
                ns,
                server.url,
                worker={"concurrency": 1},
                scaling={
                    "minReplicas": 0,
                    "maxReplicas": 3,
                    "pollSeconds": 1,
                    "jobsPerReplica": 1,
                    "idleSecondsBeforeZero": 0,
                    "scaleDown": minimal,
                },
            )
        )
        api.create_tq(
            taskqueue(
                "one",
                ns,
                server.url,
                worker={"concurrency": 1},
                scaling={
                    "minReplicas": 1,
                    "maxReplicas": 3,
                    "pollSeconds": 1,
                    "jobsPerReplica": 1,
                    "idleSecondsBeforeZero": 0,
                    "scaleDown": minimal,
                },
            )
        )
        wait(lambda: replicas("zero") == 0 and replicas("one") == 1, 120, "Deployments", 0.2)
        # the "one" worker pod must be up and consuming before the trials from one
        q_one, q_zero = queue_of("one", ns), queue_of("zero", ns)
        warm = app.enqueue_many([kubeq.Call("e2e.work", (0,), {"seconds": 0}, queue=q_one)])
        warm[0].result(timeout=120)
        from_zero: list[float] = []
        to_zero: list[float] = []
        from_one: list[float] = []
        for i in range(a.trials):
            t0 = time.monotonic()
            job = app.enqueue_many([kubeq.Call("e2e.work", (i,), {"seconds": 0.05}, queue=q_zero)])[
                0
            ]
            t_up = wait(lambda: replicas("zero") > 0, 60, "scale from zero")
            job.result(timeout=120)
            t_done = time.monotonic()
            t_zero = wait(lambda: replicas("zero") == 0, 120, "scale to zero")
            from_zero.append(t_up - t0)
            to_zero.append(t_zero - t_done)
            # pods gone before the next trial, so each trial starts from zero pods
            wait(lambda: not api.pods(ns, "zero"), 120, "pods gone", 0.2)

            t0 = time.monotonic()
            jobs = app.enqueue_many(
                [kubeq.Call("e2e.work", (i,), {"seconds": 1.0}, queue=q_one) for _ in range(3)]
            )
            t_up = wait(lambda: replicas("one") > 1, 60, "scale from one")
            from_one.append(t_up - t0)
            for j in jobs:
                j.result(timeout=120)
            wait(lambda: replicas("one") == 1, 120, "back to one", 0.1)
            wait(lambda: len(api.pods(ns, "one")) == 1, 120, "one pod", 0.2)
            print(
                f"trial {i + 1}: from zero {from_zero[-1]:.2f} s, to zero {to_zero[-1]:.2f} s,"
                f" from one {from_one[-1]:.2f} s",
                file=sys.stderr,
                flush=True,
            )
        out["kubeq"] = {
            "from_zero_p50_s": statistics.median(from_zero),
            "from_zero_p90_s": pct(from_zero, 0.9),
            "from_one_p50_s": statistics.median(from_one),
            "from_one_p90_s": pct(from_one, 0.9),
            "to_zero_p50_s": statistics.median(to_zero),
            "to_zero_p90_s": pct(to_zero, 0.9),
            "trials": a.trials,
            "poll_seconds": 1,
            "samples": {"from_zero": from_zero, "from_one": from_one, "to_zero": to_zero},
        }
    finally:
        app.close()
        if op is not None:
            kubectl("delete", "taskqueues", "--all", "-n", ns, "--wait=true", "--timeout=90s")
            op.stop()
        kubectl("delete", "namespace", ns, "--wait=false")
        server.stop()
        api_client.close()
        if a.skip_cpu and started:
            down(Path(info.state_dir))

    if not a.skip_cpu:  # the operator engineer's script: 100 TaskQueues at a 1 s poll
        res = subprocess.run(
            [
                sys.executable,
                str(HERE / "operator_many_taskqueues.py"),
                "--count",
                "100",
                "--seconds",
                str(a.cpu_seconds),
            ],
            capture_output=True,
            text=True,
            check=False,
            env=dict(os.environ),
            timeout=900,
        )
        try:
            blob = res.stdout[res.stdout.index("{") : res.stdout.rindex("}") + 1]
            cpu = json.loads(blob)
            out["operator_many_taskqueues"] = cpu
            out["kubeq"]["cpu_percent_per_taskqueue"] = (
                cpu["operator_cpu_percent_of_one_core"] / cpu["taskqueues"]
            )
        except ValueError:
            out["operator_many_taskqueues"] = {"error": res.stderr[-2000:]}
        finally:
            if started:
                down(Path(info.state_dir))
    out["keda_from_docs"] = keda_from_docs()
    if a.merge:
        import tables

        results = json.loads(Path(a.merge).read_text())
        results["autoscale"] = out
        results["tables"]["autoscale"] = tables.autoscale(results, a.merge)
        Path(a.merge).write_text(json.dumps(results, indent=1) + "\n")
        print(results["tables"]["autoscale"], file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
