"""Real KEDA beside kubeq on one burst, on the local control plane.

    make keda                                  # once: builds KEDA into ~/.cache/kubeq/keda-<v>
    .venv/bin/python bench/keda_real.py [--jobs 200] [--seconds 1]

Why: the simulator's KEDA is a model written from documentation; this runs KEDA's own
operator (``hack/keda/build.sh`` builds it from the Go module proxy) against the same Redis
and the same kubeq worker Deployment. Two phases on one TaskQueue's Deployment:

1. kubeq: the kubeq operator scales it (``targetWaitSeconds`` 10, every other setting at its
   default); a burst of ``--jobs`` jobs of ``--seconds`` each is enqueued at t0.
2. KEDA: the kubeq operator is stopped, the Deployment set to 0, and a ScaledObject (redis
   scaler on the TaskQueue's ready set, which KEDA reads with ZCARD; listLength 5,
   pollingInterval 5 s, cooldownPeriod 60 s: KEDA as its users tune it) scales it; the same
   burst.

For each: backlog -> replicas raised (from zero), the highest replicas, burst enqueued -> all
done, drained -> zero replicas, replica-seconds (spec.replicas integrated, read every 0.2 s),
and jobs handed back (deliveries beyond the first, from each job's record). KEDA's metrics
server (the HPA half) is registered as the external metrics APIService, reached by its
endpoint; the HPA's ScalingActive condition at the end is reported as ``hpa_metric`` (without
the metric the HPA holds the one replica KEDA's operator activates).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KEDA_VERSION = os.environ.get("KEDA_VERSION", "v2.21.0")
KEDA_DIR = Path(os.environ.get("KUBEQ_CACHE", Path.home() / ".cache" / "kubeq")) / (
    f"keda-{KEDA_VERSION}"
)


def keda_crds() -> list[Path]:
    mod = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    bases = Path(mod) / "github.com" / "kedacore" / "keda" / f"v2@{KEDA_VERSION}" / "config"
    return sorted((bases / "crd" / "bases").glob("*.yaml"))


def certs(where: Path) -> Path:
    """A self-signed pair for the operator's gRPC metrics service (tls.crt, tls.key, ca.crt)."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=keda-operator", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(where / "tls.key"), "-out", str(where / "tls.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    (where / "ca.crt").write_bytes((where / "tls.crt").read_bytes())
    return where


HOST_IP = os.environ.get("KEDA_ADAPTER_IP", "192.0.2.2")
"""A non-loopback address of this machine for KEDA's metrics server (an EndpointSlice may not
name 127.0.0.1); the API server reaches it by its endpoint (--enable-aggregator-routing)."""


def register_adapter(kubectl: Any, work: Path, ns: str, port: int) -> None:
    """The external metrics API served by KEDA's metrics server on HOST_IP:port: a Service
    without selector, its EndpointSlice and the APIService (TLS not verified: a test cluster)."""
    docs = [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "keda-metrics-apiserver", "namespace": ns},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "keda-metrics-apiserver-1", "namespace": ns,
                      "labels": {"kubernetes.io/service-name": "keda-metrics-apiserver"}},
         "addressType": "IPv4", "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
         "endpoints": [{"addresses": [HOST_IP], "conditions": {"ready": True}}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
         "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1",
                  "groupPriorityMinimum": 100, "versionPriority": 100,
                  "insecureSkipTLSVerify": True,
                  "service": {"name": "keda-metrics-apiserver", "namespace": ns, "port": 443}}},
    ]  # fmt: skip
    for i, doc in enumerate(docs):
        path = work / f"adapter-{i}.json"
        path.write_text(json.dumps(doc))
        kubectl("apply", "-f", str(path), check=True)


class Sampler(threading.Thread):
    """Reads a Deployment's spec.replicas every 0.2 s: first raise, highest, integral."""

    def __init__(self, read: Any) -> None:
        super().__init__(daemon=True)
        self.read, self.stop = read, threading.Event()
        self.samples: list[tuple[float, int]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), self.read()))
            time.sleep(0.2)

    def replica_seconds(self) -> float:
        pairs = zip(self.samples, self.samples[1:], strict=False)
        return sum(a[1] * (b[0] - a[0]) for a, b in pairs)


README_BEGIN = "<!-- keda-real table: written by bench/keda_real.py, do not edit -->"
README_END = "<!-- end of keda-real table -->"
ROWS = (
    ("enqueue -> replicas raised from zero, s", "from_zero_s"),
    ("highest replicas", "max_replicas"),
    ("enqueue -> all jobs done, s", "all_done_s"),
    ("all done -> zero replicas, s", "drained_to_zero_s"),
    ("replica-seconds (spec.replicas, 0.2 s samples)", "replica_seconds"),
    ("jobs handed back at scale-in", "handed_back"),
)


def table(out: dict[str, Any]) -> str:
    """The README's table of one run (``out`` as printed)."""
    k, e = out["kubeq"], out["keda_real"]
    lines = [
        f"Burst of {out['jobs']} jobs of {out['job_seconds']:g} s, maxReplicas 10, one run "
        f"({out.get('date', '?')}); KEDA {out['keda']}; the HPA's metric condition at the end: "
        f"{'; '.join(out.get('hpa_metric') or ['none'])}",
        "",
        "| figure | kubeq (targetWaitSeconds 10, defaults) | KEDA (polling 5 s, cooldown 60 s) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {label} | {k[key]} | {e[key]} |" for label, key in ROWS]
    return "\n".join(lines) + "\n"


def write_readme(path: Path, out: dict[str, Any]) -> None:
    text = path.read_text()
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(f"{head}{README_BEGIN}\n{table(out)}{README_END}{tail}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=None, help="write keda-real.json here")
    ap.add_argument("--readme", type=Path, default=None, help="rewrite the table in this file")
    ap.add_argument("--render", type=Path, default=None, help="no run: table from this JSON")
    a = ap.parse_args()
    if a.render is not None:
        if a.readme is not None:
            write_readme(a.readme, json.loads(a.render.read_text()))
        return 0
    keda_bin = KEDA_DIR / "bin" / "keda"
    if not keda_bin.exists():
        print(f"{keda_bin} missing: run `make keda` first", file=sys.stderr)
        return 2
    os.environ.setdefault(
        "KUBEQ_CLUSTER_DIR", str(Path(tempfile.gettempdir()) / "kubeq-keda-real-cluster")
    )
    sys.path[:0] = [str(ROOT / "hack" / "cluster"), str(ROOT)]
    from kubernetes import client, config

    import kubeq
    from kubeq.store.keys import QueueKeys
    from localcluster.cluster import up
    from tests.operator.opsupport import (
        Api,
        OperatorProcess,
        free_port,
        install_crd,
        queue_of,
        taskqueue,
    )
    from tests.support.redisserver import RedisServer

    info, _ = up()
    work = Path(tempfile.mkdtemp(prefix="kubeq-keda-real-"))
    server = RedisServer(work / "redis")
    server.start()
    api_client = config.new_client_from_config(config_file=info.kubeconfig, persist_config=False)
    api = Api(api_client)
    ns = f"keda-real-{int(time.time())}"
    name = "burst"
    queue = queue_of(name, ns)

    def kubectl(*args: str, check: bool = False) -> Any:
        return subprocess.run(
            [str(Path(info.bin_dir) / "kubectl"), *args],
            text=True, capture_output=True, env=info.kubectl_env(), check=check,
        )  # fmt: skip

    def replicas() -> int:
        dep = api.deployment(ns, f"{name}-worker")
        return int(dep.spec.replicas or 0) if dep else -1

    def wait(pred: Any, timeout: float, what: str, step: float = 0.1) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return time.monotonic()
            time.sleep(step)
        raise TimeoutError(what)

    app = kubeq.App(server.url)

    def burst(label: str) -> dict[str, Any]:
        sampler = Sampler(replicas)
        sampler.start()
        t0 = time.monotonic()
        jobs = app.enqueue_many(
            [
                kubeq.Call("e2e.work", (i,), {"seconds": a.seconds}, queue=queue)
                for i in range(a.jobs)
            ]
        )
        t_up = wait(lambda: replicas() > 0, 300, f"{label}: scale from zero")
        for j in jobs:
            j.result(timeout=900)
        t_done = time.monotonic()
        t_zero = wait(lambda: replicas() == 0, 900, f"{label}: scale to zero", 0.2)
        sampler.stop.set()
        sampler.join()
        # a job handed back at scale-in (or lost with its pod) is delivered again
        handed_back = sum(max(0, j.info().deliveries - 1) for j in jobs)
        return {
            "from_zero_s": round(t_up - t0, 2),
            "max_replicas": max(n for _, n in sampler.samples),
            "all_done_s": round(t_done - t0, 1),
            "drained_to_zero_s": round(t_zero - t_done, 1),
            "replica_seconds": round(sampler.replica_seconds()),
            "handed_back": handed_back,
        }

    out: dict[str, Any] = {
        "jobs": a.jobs,
        "job_seconds": a.seconds,
        "keda": KEDA_VERSION,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    op = keda = adapter = None
    try:
        install_crd(kubectl)
        for crd in keda_crds():
            kubectl("apply", "--server-side", "-f", str(crd), check=True)
        api.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        op = OperatorProcess(info.kubeconfig, work / "operator.log")
        body = taskqueue(name, ns, server.url, scaling={"maxReplicas": 10, "targetWaitSeconds": 10})
        body["spec"]["scaling"] = {"maxReplicas": 10, "targetWaitSeconds": 10}  # defaults
        api.create_tq(body)
        wait(lambda: replicas() == 0, 120, "Deployment at zero", 0.2)
        out["kubeq"] = burst("kubeq")
        print(json.dumps(out), file=sys.stderr, flush=True)
        op.stop()
        op = None
        kubectl("-n", ns, "scale", f"deployment/{name}-worker", "--replicas=0", check=True)
        wait(lambda: not api.pods(ns, name), 120, "pods gone", 0.2)
        cert_dir = certs(work / "certs")
        env = {**os.environ, "KUBECONFIG": info.kubeconfig, "WATCH_NAMESPACE": "",
               "KEDA_CLUSTER_OBJECT_NAMESPACE": ns, "POD_NAMESPACE": ns}  # fmt: skip
        grpc_port, adapter_port = free_port(), free_port()
        log = (work / "keda.log").open("w")
        keda = subprocess.Popen(
            [str(keda_bin), f"--cert-dir={cert_dir}", "--metrics-bind-address=127.0.0.1:0",
             "--health-probe-bind-address=127.0.0.1:0",
             f"--metrics-service-bind-address=127.0.0.1:{grpc_port}", "--leader-elect=false",
             "--zap-log-level=info"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        alog = (work / "keda-adapter.log").open("w")
        kc = info.kubeconfig
        adapter = subprocess.Popen(
            [str(KEDA_DIR / "bin" / "keda-adapter"), f"--secure-port={adapter_port}",
             f"--bind-address={HOST_IP}", f"--cert-dir={cert_dir}",
             f"--tls-cert-file={cert_dir / 'tls.crt'}",
             f"--tls-private-key-file={cert_dir / 'tls.key'}",
             f"--lister-kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
             f"--authorization-kubeconfig={kc}",
             f"--metrics-service-address=127.0.0.1:{grpc_port}", "--port=0"],
            env=env, stdout=alog, stderr=subprocess.STDOUT,
        )  # fmt: skip
        register_adapter(kubectl, work, ns, adapter_port)
        host, port = server.url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        scaled = {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "scaleTargetRef": {"name": f"{name}-worker"},
                "pollingInterval": 5,
                "cooldownPeriod": 60,
                "minReplicaCount": 0,
                "maxReplicaCount": 10,
                "triggers": [
                    {
                        "type": "redis",
                        "metadata": {
                            "address": f"{host}:{port}",
                            "listName": QueueKeys.of(queue).ready,
                            "listLength": "5",
                            "activationListLength": "0",
                        },
                    }
                ],
            },
        }
        (work / "scaledobject.json").write_text(json.dumps(scaled))
        kubectl("apply", "-f", str(work / "scaledobject.json"), check=True)
        # a random phase to KEDA's 5 s polling (a fixed wait would line the burst up with it)
        time.sleep(10 + random.uniform(0, 5))
        out["keda_real"] = burst("keda")
        hpa = kubectl("-n", ns, "get", "hpa", "-o", "json").stdout
        out["hpa_metric"] = [
            c.get("message", "") for h in json.loads(hpa or "{}").get("items", [])
            for c in h.get("status", {}).get("conditions", []) if c.get("type") == "ScalingActive"
        ]  # fmt: skip
    finally:
        for proc in (keda, adapter):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
        kubectl("delete", "apiservice", "v1beta1.external.metrics.k8s.io", "--wait=false")
        if op is not None:
            op.stop()
        kubectl("delete", "namespace", ns, "--wait=false")
        server.stop()
    print(json.dumps(out))
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "keda-real.json").write_text(json.dumps(out, indent=1) + "\n")
    if a.readme is not None:
        write_readme(a.readme, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
