"""The whole loop on this machine: ``make demo`` runs this script.

Starts (or reuses) the local control plane from hack/cluster with its node agent, a private
redis-server, installs the CRD, runs the operator, applies a sample TaskQueue (min 0, max 6)
whose worker pods run ``tasks.py`` from this folder, sends two bursts of jobs and prints,
once a second, the backlog, in-flight jobs and the desired/current workers until the
Deployment is back to zero. Everything it started is stopped at the end (``--keep`` leaves
the cluster running). It needs a source checkout with hack/cluster on PYTHONPATH, which
``make demo`` sets (see README.md beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

import kubeq
from kubeq_operator.crd import API_VERSION, CRD_NAME, GROUP, KIND, PLURAL, VERSION

try:
    from localcluster.cluster import down, up
except ImportError:
    sys.exit("hack/cluster is not on PYTHONPATH: run this demo with `make demo`")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CRD = ROOT / "manifests" / "crd" / f"{CRD_NAME}.yaml"
NAMESPACE = "kubeq-demo"
NAME = "thumbnails"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _taskqueue(redis_url: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "redis": {"url": redis_url},
            "queues": ["thumbnails"],
            "worker": {
                "image": "kubeq:demo",
                "tasks": "tasks",  # tasks.py in this folder, on the worker pods' PYTHONPATH
                "env": [{"name": "PYTHONPATH", "value": str(HERE)}],
                "concurrency": 4,
                "terminationGracePeriodSeconds": 30,
            },
            "scaling": {
                "minReplicas": 0,
                "maxReplicas": 6,
                "jobsPerReplica": 8,
                "pollSeconds": 1,
                "idleSecondsBeforeZero": 10,
                "scaleDown": {"stabilizationSeconds": 10, "periodSeconds": 2, "maxPodsPerStep": 2},
            },
        },
    }


def _bar(n: int, width: int = 30, scale: float = 1.0) -> str:
    return "#" * min(width, round(n * scale))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kubeq-demo-cluster")
    ap.add_argument("--jobs", type=int, default=400, help="jobs in the first burst")
    ap.add_argument("--keep", action="store_true", help="leave the local cluster running")
    args = ap.parse_args(argv)

    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        print("redis-server is missing: run `make redis-server`", file=sys.stderr)
        return 2
    print("starting the local Kubernetes control plane and node agent ...", flush=True)
    info, started = up()
    work = Path(tempfile.mkdtemp(prefix="kubeq-demo-"))
    port = _free_port()
    redis_proc = subprocess.Popen(
        [redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "KUBECONFIG": info.kubeconfig}
    kubectl = [str(Path(info.bin_dir) / "kubectl")]
    operator: subprocess.Popen[bytes] | None = None
    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=info.kubeconfig, persist_config=False
    )
    custom = client.CustomObjectsApi(api_client)
    apps = client.AppsV1Api(api_client)
    app = kubeq.App(redis_url)
    try:
        subprocess.run(
            [*kubectl, "apply", "-f", str(CRD)],
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *kubectl,
                "wait",
                "--for",
                "condition=established",
                "--timeout=60s",
                f"crd/{CRD_NAME}",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*kubectl, "create", "namespace", NAMESPACE], env=env, capture_output=True, check=False
        )
        log = open(work / "operator.log", "wb")  # noqa: SIM115 - lives as long as the operator
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubeq_operator",
                "--metrics-port",
                str(_free_port()),
                "--liveness",
                "",
                # cluster-wide: kopf serving one namespace may miss the deletions in it
                # while that namespace terminates (kopf issue #1088)
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        tq = _taskqueue(redis_url)
        with contextlib.suppress(client.ApiException):
            custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, NAME)
            time.sleep(3)
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, tq)
        print(f"TaskQueue {NAMESPACE}/{NAME}: min 0, max 6 workers, 8 jobs per worker")
        print(f"operator log: {work / 'operator.log'}; Redis {redis_url}\n")
        time.sleep(2)

        t0 = time.monotonic()
        bursts = [(0.0, args.jobs, 0.2), (35.0, args.jobs // 2, 0.4)]
        sent: list[Any] = []
        print(f"{'t':>5}  {'backlog':>7} {'inflight':>8} {'desired':>7} {'current':>7}  workers")
        seen_work = False
        while True:
            now = time.monotonic() - t0
            while bursts and now >= bursts[0][0]:
                _, n, seconds = bursts.pop(0)
                sent += app.enqueue_many(
                    [
                        kubeq.Call("demo.resize", (i,), {"seconds": seconds}, queue="thumbnails")
                        for i in range(n)
                    ]
                )
                print(f"{now:5.0f}  --- enqueued a burst of {n} jobs of {seconds} s ---")
                seen_work = False
            obj: Any = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, NAME)
            st = obj.get("status", {})
            dep = apps.read_namespaced_deployment_status(f"{NAME}-worker", NAMESPACE)
            current = (dep.status.replicas if dep.status else 0) or 0
            desired = dep.spec.replicas or 0
            stats = app.queue("thumbnails").stats()
            seen_work = seen_work or current > 0
            print(
                f"{now:5.0f}  {stats.backlog:7d} {stats.in_flight:8d} {desired:7d} {current:7d}  "
                f"{_bar(current, scale=3)}"
            )
            idle = stats.backlog == 0 and stats.in_flight == 0
            if not bursts and seen_work and idle and current == 0 and desired == 0:
                break
            if now > 600:
                print("the demo did not finish in 10 minutes; see the operator log")
                break
            time.sleep(1)
        done = sum(1 for j in sent if j.status() == "finished")
        print(f"\n{done}/{len(sent)} jobs finished; back to zero workers after {now:.0f} s.")
        print("scaling events:")
        events = (
            client.CoreV1Api(api_client)
            .list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.name={NAME}")
            .items
        )
        for e in sorted(events, key=lambda e: str(e.metadata.creation_timestamp)):
            print(f"  {e.reason:<18} {e.message}")
        print(json.dumps({"status": {k: v for k, v in st.items() if k != "conditions"}}))
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(  # the TaskQueue first, while the operator runs (its finalizer)
                [
                    *kubectl,
                    "-n",
                    NAMESPACE,
                    "delete",
                    PLURAL,
                    NAME,
                    "--wait=true",
                    "--timeout=60s",
                ],
                env=env,
                capture_output=True,
                check=False,
            )
            subprocess.run(
                [*kubectl, "delete", "namespace", NAMESPACE, "--wait=true", "--timeout=90s"],
                env=env,
                capture_output=True,
                check=False,
            )
        if operator is not None:
            operator.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                operator.wait(20)
            if operator.poll() is None:
                operator.kill()
        redis_proc.terminate()
        redis_proc.wait(10)
        app.close()
        api_client.close()
        if started and not args.keep:
            down(Path(info.state_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
