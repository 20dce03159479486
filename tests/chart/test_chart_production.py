"""What production asks of the chart: monitors that keep the TaskQueue's labels, Secret reads
and pod patches confined, NetworkPolicies on request, probes and resources everywhere, and
NOTES that say what the operator can read and how to upgrade the CRD."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from localcluster.paths import bin_dir
from tests.chart.test_chart import CHART, MONITORING, helm, render


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_service_monitor_honors_the_operators_labels() -> None:
    docs = render("--set", "metrics.serviceMonitor.enabled=true", *MONITORING)
    (sm,) = of_kind(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["honorLabels"] is True


def secret_rules(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Namespace ("" for cluster-wide) -> the Secret rules granted there."""
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        if d["kind"] in ("ClusterRole", "Role"):
            for rule in d["rules"]:
                if "secrets" in rule["resources"]:
                    out.setdefault(d["metadata"].get("namespace", ""), []).append(rule)
    return out


def test_secrets_are_readable_only_in_listed_namespaces() -> None:
    assert set(secret_rules(render())) == {"kubeq-system"}  # cluster scope: no ClusterRole grant
    listed = render("--set", "rbac.secretNamespaces={shop,media}")
    assert set(secret_rules(listed)) == {"shop", "media"}
    bindings = [
        b for b in of_kind(listed, "RoleBinding") if b["metadata"]["name"].endswith("-secrets")
    ]
    assert {b["metadata"]["namespace"] for b in bindings} == {"shop", "media"}
    assert all(b["subjects"][0]["namespace"] == "kubeq-system" for b in bindings)
    served = render("--set", "rbac.scope=namespaced", "--set", "rbac.namespaces={shop}")
    assert set(secret_rules(served)) == {"shop"}
    named = secret_rules(render("--set", "rbac.secretNames={redis-auth}"))
    assert named["kubeq-system"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get"],
            "resourceNames": ["redis-auth"],
        }
    ]
    assert secret_rules(render("--set", "rbac.readSecrets=false")) == {}


def test_pod_patches_are_confined_to_the_deletion_cost_by_a_policy() -> None:
    docs = render()
    (policy,) = of_kind(docs, "ValidatingAdmissionPolicy")
    (binding,) = of_kind(docs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    condition = policy["spec"]["matchConditions"][0]["expression"]
    assert "system:serviceaccount:kubeq-system:kq-kubeq" in condition
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["pods"]
    off = render("--set", "rbac.podPatchPolicy=false")
    assert not of_kind(off, "ValidatingAdmissionPolicy")


def test_network_policies_on_request() -> None:
    assert not of_kind(render("--set", "redis.enabled=true"), "NetworkPolicy")
    docs = render("--set", "networkPolicy.enabled=true", "--set", "redis.enabled=true")
    policies = {p["metadata"]["name"]: p for p in of_kind(docs, "NetworkPolicy")}
    assert set(policies) == {"kq-kubeq", "kq-kubeq-redis"}
    redis_from = policies["kq-kubeq-redis"]["spec"]["ingress"][0]["from"]
    workers = redis_from[1]["podSelector"]["matchLabels"]
    assert workers == {
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/managed-by": "kubeq-operator",
    }


def test_redis_and_the_test_pod_are_probed_sized_and_tokenless() -> None:
    docs = render("--set", "redis.enabled=true")
    (sts,) = of_kind(docs, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    redis = pod["containers"][0]
    assert {"livenessProbe", "readinessProbe", "resources"} <= set(redis)
    assert redis["livenessProbe"] != redis["readinessProbe"]
    (test_pod,) = of_kind(docs, "Pod")
    assert test_pod["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert test_pod["spec"]["automountServiceAccountToken"] is False


@pytest.mark.cluster
def test_notes_say_what_the_operator_reads_and_how_to_upgrade_the_crd(local_cluster: Any) -> None:
    """NOTES.txt as `helm install` prints it (helm needs a reachable cluster even to dry-run)."""
    out = subprocess.run(
        [
            str(bin_dir() / "helm"), "install", "kq", str(CHART), "--dry-run=client",
            "--namespace", "kubeq-system", "--set", "rbac.secretNamespaces={shop}",
        ],
        capture_output=True, text=True, check=False, timeout=120,
        env=local_cluster.kubectl_env(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    notes = out.stdout.split("NOTES:", 1)[1]
    assert "kubectl apply --server-side -f charts/kubeq/crds/" in notes
    assert "Secrets: get, in shop only" in notes
    assert "pod-deletion-cost annotation" in notes


def test_dashboard_panels_all_have_descriptions() -> None:
    dashboard = json.loads((CHART / "dashboards" / "kubeq.json").read_text())
    assert all(p.get("description") for p in dashboard["panels"])


def test_schema_refuses_unknown_network_policy_values() -> None:
    bad = helm("template", "kq", str(CHART), "--set", "networkPolicy.enable=true")
    assert bad.returncode != 0 and "enable" in bad.stderr
