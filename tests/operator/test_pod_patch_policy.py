"""The install's ValidatingAdmissionPolicy (manifests/kubeq.yaml, rendered from the chart): the
operator's service account may patch a pod's pod-deletion-cost annotation and nothing else,
while other users' pod patches are untouched. Run on the local control plane's API server."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.pytest_plugin import wait_for

pytestmark = pytest.mark.cluster

COST = "controller.kubernetes.io/pod-deletion-cost"
WANTED = {
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


def pending_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "x"}, "annotations": {"keep": "me"}},
        "spec": {
            # no node has this label: the pod stays Pending and nothing runs
            "nodeSelector": {"kubeq.dev/test-no-such-node": "true"},
            "containers": [{"name": "c", "image": "none", "command": ["true"]}],
        },
    }


def sa_client(local_cluster: Any, kubectl: Any, tmp_path: Path) -> Any:
    """A kubernetes CoreV1Api authenticated as the operator's service account."""
    from kubernetes import client, config

    token = kubectl("-n", "kubeq-system", "create", "token", "kubeq", check=True).stdout
    admin = yaml.safe_load(Path(local_cluster.kubeconfig).read_text())
    cluster = admin["clusters"][0]
    path = tmp_path / "sa.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "sa", "user": {"token": token.strip()}}],
                "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    return client.CoreV1Api(config.new_client_from_config(config_file=str(path)))


def test_operator_may_patch_only_the_deletion_cost(
    local_cluster: Any, kubectl: Any, k8s_client: Any, k8s_namespace: str, tmp_path: Path
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    docs = yaml.safe_load_all(Path("manifests/kubeq.yaml").read_text())
    objs = [d for d in docs if d and d["kind"] in WANTED]
    assert {d["kind"] for d in objs} == WANTED
    r = kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
    assert r.returncode == 0, r.stderr

    admin = client.CoreV1Api(k8s_client)
    for name in ("victim", "canary"):
        admin.create_namespaced_pod(k8s_namespace, pending_pod(name))
    operator = sa_client(local_cluster, kubectl, tmp_path)

    def patch(api: Any, body: dict[str, Any], name: str = "victim") -> str | None:
        """None if the patch went through, else the API server's message."""
        try:
            api.patch_namespaced_pod(name, k8s_namespace, body)
        except ApiException as e:
            return str(e.body)
        return None

    # the policy takes effect a moment after it is created (the API server loads it); each
    # try sets a new value (a patch that changes nothing is no change, and the policy allows it)
    tries = itertools.count()
    wait_for(
        lambda: (
            patch(operator, {"metadata": {"labels": {"probe": str(next(tries))}}}, "canary")
            is not None
        ),
        timeout=30,
        message="the ValidatingAdmissionPolicy to refuse the operator's label patch",
    )
    assert patch(operator, {"metadata": {"annotations": {COST: "-100"}}}) is None
    assert patch(operator, {"metadata": {"annotations": {COST: "1003"}}}) is None
    assert patch(operator, {"metadata": {"annotations": {COST: None}}}) is None
    refused = [
        {"metadata": {"labels": {"app": "hijacked"}}},
        {"metadata": {"annotations": {"keep": None}}},
        {"metadata": {"annotations": {"other": "1", COST: "5"}}},
        {"metadata": {"finalizers": ["example.com/hold"]}},
        {"spec": {"activeDeadlineSeconds": 5}},
    ]
    for body in refused:
        message = patch(operator, body)
        assert message is not None, f"the operator could patch {body}"
        assert "pod-deletion-cost" in message, message
    live = admin.read_namespaced_pod("victim", k8s_namespace)
    assert live.metadata.labels == {"app": "x"}
    assert live.metadata.annotations == {"keep": "me"}
    # the policy binds the operator only: an admin's patch is not its business
    assert patch(admin, {"metadata": {"labels": {"app": "y"}}}) is None
    for name in ("victim", "canary"):
        admin.delete_namespaced_pod(name, k8s_namespace, grace_period_seconds=0)
    policies = [d for d in objs if d["kind"].startswith("ValidatingAdmissionPolicy")]
    kubectl("delete", "-f", "-", input=yaml.safe_dump_all(policies), check=True)
