"""Where the local control plane keeps things: the pinned release, binaries, and state.

Kept in one module so the CLI, the node agent and the pytest plugin agree on the layout:
binaries live in a per-version cache outside the checkout (built by hack/cluster/build.sh),
run-time state (etcd data, certificates, kubeconfigs, logs, pid files) under ``.cluster/``
in the checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The Kubernetes release built by hack/cluster/build.sh (keep both in sync).
K8S_VERSION = "v1.35.4"

#: The control-plane binaries build.sh produces; all must exist before ``up``.
CONTROL_PLANE_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
)
#: The real node's (realnode.py).
NODE_BINARIES = ("kubelet", "kube-proxy")
ALL_BINARIES = (*CONTROL_PLANE_BINARIES, *NODE_BINARIES, "helm", "kubeconform")

#: hack/cluster/localcluster -> the checkout root.
REPO_ROOT = Path(__file__).resolve().parents[3]
HACK_DIR = REPO_ROOT / "hack" / "cluster"
BUILD_SCRIPT = HACK_DIR / "build.sh"


def bin_dir() -> Path:
    """The directory holding the built binaries (``$KUBEQ_K8S_BIN_DIR`` overrides it)."""
    override = os.environ.get("KUBEQ_K8S_BIN_DIR")
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kubeq" / f"k8s-{K8S_VERSION}" / "bin"


def default_state_dir(node: str = "agent") -> Path:
    """``.cluster/`` in the checkout (``$KUBEQ_CLUSTER_DIR`` overrides it); with the real node
    ``.cluster-real/`` (``$KUBEQ_REAL_CLUSTER_DIR``), so both kinds can run side by side."""
    if node == "real":
        override = os.environ.get("KUBEQ_REAL_CLUSTER_DIR")
        return Path(override).resolve() if override else REPO_ROOT / ".cluster-real"
    override = os.environ.get("KUBEQ_CLUSTER_DIR")
    return Path(override).resolve() if override else REPO_ROOT / ".cluster"


def missing_binaries(directory: Path | None = None) -> list[str]:
    """Names of the binaries that are not (yet) built."""
    d = directory or bin_dir()
    return [b for b in ALL_BINARIES if not os.access(d / b, os.X_OK)]


class Layout:
    """Paths inside one state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pki = root / "pki"
        self.etcd_data = root / "etcd"
        self.logs = root / "logs"
        self.pod_logs = root / "logs" / "pods"
        self.run = root / "run"
        self.pod_pids = root / "run" / "pods"
        self.pods = root / "pods"
        self.kubeconfigs = root / "kubeconfigs"
        self.kubeconfig = root / "kubeconfig"
        self.state_file = root / "state.json"
        self.lock_file = root / ".lock"

    def pod_log(self, namespace: str, pod: str, container: str) -> Path:
        return self.pod_logs / f"{namespace}_{pod}_{container}.log"
