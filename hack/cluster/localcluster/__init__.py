"""A local Kubernetes control plane for kubeq's tests and demo (see hack/cluster/README.md).

``up()`` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler (built from
source by hack/cluster/build.sh) and a node agent that runs pods as local processes;
``down()`` stops them. Import with ``hack/cluster`` on ``sys.path``; the pytest fixtures live
in :mod:`localcluster.pytest_plugin`.
"""

from .cluster import ClusterError, ClusterInfo, down, running, status, up
from .paths import K8S_VERSION, Layout, bin_dir, default_state_dir, missing_binaries
from .podruns import read_pod_log

__all__ = [
    "K8S_VERSION",
    "ClusterError",
    "ClusterInfo",
    "Layout",
    "bin_dir",
    "default_state_dir",
    "down",
    "missing_binaries",
    "read_pod_log",
    "running",
    "status",
    "up",
]
