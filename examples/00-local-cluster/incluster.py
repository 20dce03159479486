"""The demo on real containers: everything in pods, on the local real node or on a cluster
you already have (kind, k3d, minikube; ``KUBECONFIG``).

What it sets up: the kubeq image (``make image``), a worker image built ``FROM`` it with this
folder's tasks.py, a Redis image (Debian's redis-server on the same base), each loaded into
the cluster's container runtime; the chart (``helm install``: the operator in a pod with its
ServiceAccount); a Redis pod behind a Service. This host reaches Redis through
``kubectl port-forward``; the operator and the workers through the Service's ClusterIP (no
cluster DNS is needed).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PODMAN = ROOT / "hack" / "image" / "podman.sh"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
RELEASE_NAMESPACE = "kubeq-system"

REDIS_CONTAINERFILE = """ARG BASE
FROM ${BASE}
USER root
RUN apt-get update \\
 && apt-get install -y --no-install-recommends redis-server \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/*
USER 10001:10001
ENTRYPOINT ["redis-server"]
"""
WORKER_CONTAINERFILE = """ARG BASE
FROM ${BASE}
COPY --chown=10001:10001 tasks.py /app/
"""


@dataclass(frozen=True)
class Images:
    kubeq: str
    worker: str
    redis: str


def _podman(*args: str, timeout: float = 900) -> str:
    out = subprocess.run(
        [str(PODMAN), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"podman {args[0]} failed: {out.stderr[-2000:]}")
    return out.stdout


def kubeq_image() -> str:
    """`make image`: the reference is the script's last line (progress goes to the terminal)."""
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "image" / "build.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    lines = out.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(line, flush=True)
    return lines[-1]


def derived_image(name: str, base: str, containerfile: str, files: dict[str, Path]) -> str:
    """An image ``FROM base``, tagged by a hash of what goes in (reused when unchanged)."""
    digest = hashlib.sha256(f"{base}\n{containerfile}".encode())
    for arc, path in sorted(files.items()):
        digest.update(arc.encode() + b"\0" + path.read_bytes())
    ref = f"localhost/kubeq-{name}:{digest.hexdigest()[:12]}"
    exists = subprocess.run([str(PODMAN), "image", "exists", ref], check=False)
    if exists.returncode == 0:
        return ref
    print(f"building {ref} FROM {base} (about a minute) ...", flush=True)
    with tempfile.TemporaryDirectory() as ctx:
        for arc, path in files.items():
            shutil.copy(path, Path(ctx) / arc)
        (Path(ctx) / "Containerfile").write_text(containerfile)
        mount = ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.exists() else []
        _podman("build", "--network", "host", *mount, "--build-arg", f"BASE={base}",
                "--tag", ref, "--file", str(Path(ctx) / "Containerfile"), ctx)  # fmt: skip
    return ref


def build_images() -> Images:
    kubeq = kubeq_image()
    worker = derived_image(
        "demo-worker", kubeq, WORKER_CONTAINERFILE, {"tasks.py": HERE / "tasks.py"}
    )
    redis = derived_image("redis", kubeq, REDIS_CONTAINERFILE, {})
    return Images(kubeq, worker, redis)


def loader_for(context: str) -> Callable[[str], None]:
    """How images get into the cluster of this kubeconfig context: `kind load`, `k3d image
    import`, `minikube image load`, from a `podman save` archive."""

    def via(command: Callable[[Path], list[str]]) -> Callable[[str], None]:
        def load(ref: str) -> None:
            with tempfile.TemporaryDirectory() as tmp:
                archive = Path(tmp) / "image.tar"
                _podman("save", "--format", "docker-archive", "--output", str(archive), ref)
                subprocess.run(command(archive), check=True)

        return load

    if context.startswith("kind-"):
        cluster = context.removeprefix("kind-")
        return via(lambda a: ["kind", "load", "image-archive", str(a), "--name", cluster])
    if context.startswith("k3d-"):
        cluster = context.removeprefix("k3d-")
        return via(lambda a: ["k3d", "image", "import", str(a), "--cluster", cluster])
    if context == "minikube":
        return via(lambda a: ["minikube", "image", "load", str(a)])
    raise SystemExit(
        f"don't know how to load images into the cluster of context {context!r}: push "
        "localhost/kubeq:dev to a registry it pulls from (docs/real-node.md)"
    )


def helm_install(helm: list[str], kubeq_ref: str, pull_policy: str = "IfNotPresent") -> None:
    """The chart with the kubeq image; returns once the operator pod is Ready (its probe)."""
    repo, tag = kubeq_ref.rsplit(":", 1)
    print("helm install kubeq (the operator in a pod) ...", flush=True)
    subprocess.run(
        [*helm, "upgrade", "--install", "kubeq", str(ROOT / "charts" / "kubeq"),
         "--namespace", RELEASE_NAMESPACE, "--create-namespace",
         "--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
         "--set", f"image.pullPolicy={pull_policy}", "--wait", "--timeout", "300s"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


def redis_in_cluster(core: object, namespace: str, image: str) -> str:
    """A Redis pod behind a Service; returns its ClusterIP."""
    from kubernetes import client

    api: client.CoreV1Api = core  # type: ignore[assignment]
    labels = {"app": "demo-redis"}
    api.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "redis", "labels": labels},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
            "containers": [{
                "name": "redis", "image": image, "imagePullPolicy": "IfNotPresent",
                "args": ["--bind", "0.0.0.0", "--protected-mode", "no", "--save", "",
                         "--appendonly", "no"],
                "ports": [{"containerPort": 6379}],
                "readinessProbe": {"tcpSocket": {"port": 6379}, "periodSeconds": 1},
            }],
        },
    })  # fmt: skip
    svc = api.create_namespaced_service(namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "redis"},
        "spec": {"selector": labels, "ports": [{"port": 6379, "targetPort": 6379}]},
    })  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        pod = api.read_namespaced_pod("redis", namespace)
        ready = [c for c in (pod.status.conditions or []) if c.type == "Ready"]
        if ready and ready[0].status == "True":
            return str(svc.spec.cluster_ip)
        time.sleep(0.5)
    raise RuntimeError("the Redis pod did not become ready in 3 minutes")


@contextlib.contextmanager
def port_forward(kubectl: list[str], namespace: str, target: str, port: int) -> Iterator[int]:
    """`kubectl port-forward` to a local port, for as long as the block runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [*kubectl, "-n", namespace, "port-forward", target, f"{local}:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), 1):
                break
            time.sleep(0.2)
        yield local
    finally:
        proc.terminate()
        proc.wait(10)
