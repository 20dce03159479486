"""The whole loop on this machine: ``make demo`` runs this script.

Starts (or reuses) the local control plane from hack/cluster, applies a sample TaskQueue
(min 0, max 6) whose worker pods run ``tasks.py`` from this folder, sends two bursts of jobs
and prints, once a second, the backlog, in-flight jobs and the desired/current workers until
the Deployment is back to zero. Everything it started is stopped at the end (``--keep``
leaves the cluster running). It needs a source checkout with hack/cluster on PYTHONPATH,
which ``make demo`` sets (see README.md beside it).

``--cluster`` says where the pods run: ``real``, real containers on the local real node
(containerd + kubelet; the operator, Redis and the workers all in pods, incluster.py);
``agent``, the stand-in node agent (pods are local processes; Redis and the operator run on
this host); ``existing``, the cluster of your ``KUBECONFIG`` (kind, k3d, minikube), like
``real``; ``auto`` (default), real when this machine can run it, else the node agent.
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
    from localcluster import realnode
    from localcluster.cluster import ClusterError, ClusterInfo, down, up
    from localcluster.paths import bin_dir
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


def _taskqueue(redis_url: str, image: str | None = None) -> dict[str, Any]:
    """The demo's TaskQueue; with ``image`` (a worker image holding tasks.py in /app) for real
    containers, else for the node agent (tasks.py from this folder)."""
    tq: dict[str, Any] = {
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
    if image is not None:
        tq["spec"]["worker"].update(image=image, imagePullPolicy="IfNotPresent", env=[])
    return tq


def _bar(n: int, width: int = 30, scale: float = 1.0) -> str:
    return "#" * min(width, round(n * scale))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kubeq-demo-cluster")
    ap.add_argument("--jobs", type=int, default=400, help="jobs in the first burst")
    ap.add_argument("--keep", action="store_true", help="leave the local cluster running")
    ap.add_argument(
        "--cluster",
        choices=["auto", "real", "agent", "existing"],
        default=os.environ.get("CLUSTER") or "auto",
        help="where the pods run (default: real containers when this machine can)",
    )
    args = ap.parse_args(argv)
    mode = args.cluster
    if mode == "auto":
        mode, why = _choose()
        print(why, flush=True)
    if mode == "agent":
        return _run_agent(args)
    if mode == "real":
        subprocess.run(["bash", str(ROOT / "hack" / "debs.sh"), *realnode.NODE_DEBS], check=True)
    return _run_in_containers(args, mode)


def _choose() -> tuple[str, str]:
    """Real containers when this machine can run the real node, else the node agent."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "agent", "not root on Linux: pods run on the node agent (local processes)"
    debs = subprocess.run(
        ["bash", str(ROOT / "hack" / "debs.sh"), *realnode.NODE_DEBS], check=False
    )
    if debs.returncode != 0:
        return "agent", "containerd & co. cannot be installed: pods run on the node agent"
    return "real", "pods run in real containers (containerd + kubelet, docs/real-node.md)"


def _run_in_containers(args: argparse.Namespace, mode: str) -> int:
    sys.path.insert(0, str(HERE))
    import incluster

    info: ClusterInfo | None = None
    started = False
    if mode == "existing":
        kubeconfig = os.environ.get("KUBECONFIG")
        if not kubeconfig:
            sys.exit("CLUSTER=existing needs KUBECONFIG (kind, k3d, minikube): docs/real-node.md")
        bins = str(bin_dir())
        kubectl = [str(Path(bins) / "kubectl"), "--kubeconfig", kubeconfig]
        context = subprocess.run(
            [*kubectl, "config", "current-context"], capture_output=True, text=True, check=True
        ).stdout.strip()
        load = incluster.loader_for(context)
        print(f"using your cluster (context {context}); images are loaded into it", flush=True)
    else:
        print("starting the local control plane with a real node ...", flush=True)
        try:
            info, started = up(node="real")
        except ClusterError as e:
            sys.exit(f"the real node did not start: {e}\n(`make demo CLUSTER=agent` runs without)")
        kubeconfig, bins = info.kubeconfig, info.bin_dir
        kubectl = [str(Path(bins) / "kubectl"), "--kubeconfig", kubeconfig]
        load = realnode.load_image
    helm = [str(Path(bins) / "helm"), "--kubeconfig", kubeconfig]
    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, persist_config=False
    )
    core = client.CoreV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    try:
        images = incluster.build_images()
        for ref in (images.kubeq, images.worker, images.redis):
            print(f"loading {ref} into the cluster ...", flush=True)
            load(ref)
        incluster.helm_install(helm, images.kubeq)
        subprocess.run(
            [*kubectl, "create", "namespace", NAMESPACE], capture_output=True, check=False
        )
        cluster_ip = incluster.redis_in_cluster(core, NAMESPACE, images.redis)
        with incluster.port_forward(kubectl, NAMESPACE, "pod/redis", 6379) as port:
            app = kubeq.App(f"redis://127.0.0.1:{port}/0")
            tq = _taskqueue(f"redis://{cluster_ip}:6379/0", image=images.worker)
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, tq)
            print(f"TaskQueue {NAMESPACE}/{NAME}: min 0, max 6 worker pods, 8 jobs per worker")
            where = f"kubectl -n {incluster.RELEASE_NAMESPACE} logs deploy/kubeq"
            print(f"operator: {where}\n")
            _wait_for_workers(api_client, where)
            _watch(args, app, api_client)
            app.close()
    finally:
        subprocess.run([*kubectl, "-n", NAMESPACE, "delete", PLURAL, NAME, "--wait=true",
                        "--timeout=60s"], capture_output=True, check=False)  # fmt: skip
        subprocess.run([*kubectl, "delete", "namespace", NAMESPACE, "--wait=true",
                        "--timeout=90s"], capture_output=True, check=False)  # fmt: skip
        subprocess.run([*helm, "uninstall", "kubeq", "-n", incluster.RELEASE_NAMESPACE, "--wait"],
                       capture_output=True, check=False)  # fmt: skip
        api_client.close()
        if info is not None and started and not args.keep:
            down(Path(info.state_dir), node="real")
    return 0


def _wait_for_workers(api_client: Any, operator_log: str, timeout: float = 180.0) -> None:
    """Wait until the operator has made the TaskQueue's worker Deployment (it starts, takes
    its turn among its peers, then reconciles the TaskQueue: seconds on a busy machine)."""
    apps = client.AppsV1Api(api_client)
    deadline = time.monotonic() + timeout
    while True:
        try:
            apps.read_namespaced_deployment(f"{NAME}-worker", NAMESPACE)
            return
        except client.ApiException as e:
            if e.status != 404:
                raise
        if time.monotonic() > deadline:
            sys.exit(
                f"the operator made no Deployment {NAMESPACE}/{NAME}-worker in {timeout:.0f} s; "
                f"its log: {operator_log}"
            )
        time.sleep(0.5)


def _watch(args: argparse.Namespace, app: kubeq.App, api_client: Any) -> None:
    """Two bursts of jobs, then one line a second until the Deployment is back at zero."""
    custom = client.CustomObjectsApi(api_client)
    apps = client.AppsV1Api(api_client)
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


def _run_agent(args: argparse.Namespace) -> int:
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
        _wait_for_workers(api_client, str(work / "operator.log"))

        _watch(args, app, api_client)
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
