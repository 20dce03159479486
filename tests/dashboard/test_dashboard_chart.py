"""The chart's `dashboard.enabled`: a read-only Deployment + Service with its own read-only
RBAC, refusals of unsafe or incomplete values, and the API server's verdict (server dry run)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.paths import bin_dir

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubeq"
ON = ["--set", "dashboard.enabled=true", "--set", "redis.enabled=true"]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    exe = bin_dir() / "helm"
    if not exe.exists():
        pytest.fail(f"helm is missing in {bin_dir()}: run `make cluster-bin`", pytrace=False)
    return subprocess.run(
        [str(exe), "template", "kq", str(CHART), "--namespace", "kubeq-system", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def render(*args: str) -> list[dict[str, Any]]:
    out = helm(*args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def dashboard_docs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["kind"]: d
        for d in docs
        if d["metadata"]["name"] == "kq-kubeq-dashboard" and d["kind"] != "ConfigMap"
    }


def test_off_by_default() -> None:
    assert dashboard_docs(render()) == {}


def test_enabled_is_read_only_non_root_and_reads_only() -> None:
    docs = dashboard_docs(render(*ON))
    assert sorted(docs) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["args"][0] == "dashboard" and "--read-only" in c["args"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in c["env"]}
    assert env["KUBEQ_REDIS_URL"]["value"] == "redis://kq-kubeq-redis.kubeq-system.svc:6379/0"
    assert "KUBEQ_DASHBOARD_TOKEN" not in env
    for rule in docs["ClusterRole"]["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    resources = {r for rule in docs["ClusterRole"]["rules"] for r in rule["resources"]}
    assert resources == {"taskqueues", "taskqueues/status", "events", "deployments"}
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == "http"


def test_actions_need_a_token_secret_and_a_namespace_gets_a_role() -> None:
    refused = helm(*ON, "--set", "dashboard.readOnly=false")
    assert refused.returncode != 0 and "dashboard.tokenSecret" in refused.stderr
    docs = dashboard_docs(
        render(
            *ON,
            "--set",
            "dashboard.readOnly=false",
            "--set",
            "dashboard.tokenSecret=dash-token",
            "--set",
            "dashboard.namespace=apps",
        )
    )
    assert "Role" in docs and "ClusterRole" not in docs
    assert docs["Role"]["metadata"]["namespace"] == "apps"
    writes = [r for r in docs["Role"]["rules"] if set(r["verbs"]) - {"get", "list", "watch"}]
    assert writes == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
    c = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert "--read-only" not in c["args"] and c["args"][-2:] == ["--namespace", "apps"]
    token = next(e for e in c["env"] if e["name"] == "KUBEQ_DASHBOARD_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "dash-token", "key": "token"}


def test_a_sentinel_or_cluster_url_given_or_from_a_secret() -> None:
    cluster = "redis+cluster://node-a:6379,node-b:6379"
    # --set-literal: a list of nodes has commas, which --set would split
    c = dashboard_docs(render(*ON, "--set-literal", f"dashboard.redisUrl={cluster}"))["Deployment"]
    env = {e["name"]: e for e in c["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KUBEQ_REDIS_URL"]["value"] == cluster
    sentinel = "redis+sentinel://s-a:26379,s-b:26379/mymaster/0"
    assert render(*ON, "--set-literal", f"dashboard.redisUrl={sentinel}")
    on = ["--set", "dashboard.enabled=true", "--set", "dashboard.redisUrlSecret=redis-url"]
    d = dashboard_docs(render(*on))["Deployment"]
    env = {e["name"]: e for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KUBEQ_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "redis-url",
        "key": "url",
    }
    leaked = helm(*ON, "--set", "dashboard.redisUrl=redis+cluster://:pw@n:6379")
    assert leaked.returncode != 0 and "redisUrl" in leaked.stderr


def test_bad_values_are_refused() -> None:
    no_redis = helm("--set", "dashboard.enabled=true")
    assert no_redis.returncode != 0 and "dashboard.redisUrl" in no_redis.stderr
    password_in_url = helm(*ON, "--set", "dashboard.redisUrl=redis://:secret@r:6379/0")
    assert password_in_url.returncode != 0 and "redisUrl" in password_in_url.stderr


@pytest.mark.cluster
def test_api_server_accepts_the_dashboard(kubectl: Any, k8s_namespace: str) -> None:
    out = helm(*ON, "--namespace", k8s_namespace, "--set", f"dashboard.namespace={k8s_namespace}")
    assert out.returncode == 0, out.stderr
    # the chart's CRDs first, as helm installs them (the kopf peering object needs its CRD)
    crd_dir = str(CHART / "crds")
    crds = kubectl("apply", "-f", crd_dir)
    assert crds.returncode == 0, crds.stderr
    ready = kubectl("wait", "--for=condition=established", "--timeout=60s", "-f", crd_dir)
    assert ready.returncode == 0, ready.stderr
    applied = kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        k8s_namespace,
        "-f",
        "-",
        input=out.stdout,
    )
    assert applied.returncode == 0, applied.stderr
