"""The real node: a kubelet with containerd joins the local control plane; pods run the kubeq
image with the chart's securityContext, reach the API server through the `kubernetes`
Service (kube-proxy), and `kubectl logs` shows their output."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from localcluster import ClusterInfo, realnode
from localcluster.pytest_plugin import wait_for

# What the chart gives the operator container (charts/kubeq/values.yaml).
LOCKED_DOWN = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}

IN_CLUSTER = """
import os
from kubernetes import client, config
config.load_incluster_config()
version = client.VersionApi().get_code().git_version
print("uid", os.getuid(), "api", version, "via", os.environ["KUBERNETES_SERVICE_HOST"])
"""


def test_the_node_is_a_ready_kubelet_on_containerd(
    real_cluster: ClusterInfo, real_client: Any
) -> None:
    node = client.CoreV1Api(real_client).read_node(realnode.NODE_NAME)
    info = node.status.node_info
    assert info.kubelet_version == real_cluster.version
    assert info.container_runtime_version.startswith("containerd://")
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses["InternalIP"] == realnode.NODE_IP
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"


def test_locked_down_pod_reaches_the_api_server_and_kubectl_logs_shows_it(
    real_client: Any, real_kubectl: Any, real_namespace: str, kubeq_image: str, node_image: Any
) -> None:
    core = client.CoreV1Api(real_client)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "incluster"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": POD_SECURITY,
            "containers": [
                {
                    "name": "main",
                    "image": node_image(kubeq_image),
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", IN_CLUSTER],
                    "securityContext": LOCKED_DOWN,
                }
            ],
        },
    }
    core.create_namespaced_pod(real_namespace, pod)

    def finished() -> Any:
        p = core.read_namespaced_pod("incluster", real_namespace)
        return p.status.phase in ("Succeeded", "Failed") and p

    done = wait_for(finished, timeout=120, message="pod incluster to finish")
    logs = real_kubectl("logs", "-n", real_namespace, "incluster")
    assert done.status.phase == "Succeeded", logs.stdout + logs.stderr
    assert logs.returncode == 0, logs.stderr
    assert f"uid 10001 api {client.VersionApi(real_client).get_code().git_version}" in logs.stdout
    assert "via 10.96.0.1" in logs.stdout
