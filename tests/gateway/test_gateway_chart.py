"""The chart's gateway component: off by default; when on, two replicas behind a
PodDisruptionBudget, and RBAC that can only review tokens and access and read TaskQueues
(and the Redis Secrets they name); the API server accepts every object it renders."""

from __future__ import annotations

from typing import Any

from tests.chart.test_chart import CHART, helm, render

ON = ("--set", "gateway.enabled=true")


def _gateway_objects(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["kind"]: d
        for d in docs
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "gateway"
    }


def test_the_gateway_is_off_by_default() -> None:
    assert _gateway_objects(render()) == {}


def test_on_it_runs_two_replicas_with_least_privilege() -> None:
    objects = _gateway_objects(render(*ON))
    assert sorted(objects) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    deployment = objects["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:1] == ["gateway"]
    assert args[args.index("--audience") + 1] == "kubeq"
    for option in ("--rate", "--unauth-rate", "--unauth-total-rate", "--api-timeout"):
        assert float(args[args.index(option) + 1]) > 0
    rules = {
        (group, resource): sorted(rule["verbs"])
        for rule in objects["ClusterRole"]["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert rules == {
        ("authentication.k8s.io", "tokenreviews"): ["create"],
        ("authorization.k8s.io", "subjectaccessreviews"): ["create"],
        ("kubeq.dev", "taskqueues"): ["get"],
        ("", "events"): ["create"],
        ("", "secrets"): ["get"],
    }
    narrowed = _gateway_objects(render(*ON, "--set", "gateway.readRedisSecrets=false"))[
        "ClusterRole"
    ]
    assert all("secrets" not in rule["resources"] for rule in narrowed["rules"])


def test_the_api_server_accepts_what_it_renders(local_cluster: Any, kubectl: Any) -> None:
    out = helm("template", "kq", str(CHART), "--namespace", "default", *ON)
    assert out.returncode == 0, out.stderr
    gateway = [
        doc for doc in out.stdout.split("\n---\n") if "app.kubernetes.io/component: gateway" in doc
    ]
    assert len(gateway) == 6
    done = kubectl("apply", "--dry-run=server", "-f", "-", input="\n---\n".join(gateway))
    assert done.returncode == 0, done.stderr
