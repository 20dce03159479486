"""The Helm chart: lint, what it renders in each mode, its gates, its dashboard, and the API
server's verdict on every object it renders (server-side dry run on the local cluster)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.paths import bin_dir

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubeq"
MONITORING = [
    "--api-versions",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "--api-versions",
    "monitoring.coreos.com/v1/PodMonitor",
]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    exe = bin_dir() / "helm"
    if not exe.exists():
        pytest.fail(f"helm is missing in {bin_dir()}: run `make cluster-bin`", pytrace=False)
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, check=False, timeout=120
    )


def render(*args: str) -> list[dict[str, Any]]:
    out = helm("template", "kq", str(CHART), "--namespace", "kubeq-system", *args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)


def test_lint_strict() -> None:
    out = helm("lint", "--strict", str(CHART))
    assert out.returncode == 0, out.stdout + out.stderr


def test_defaults_render_a_locked_down_operator() -> None:
    docs = render()
    assert kinds(docs) == [
        "ClusterKopfPeering/kubeq",  # two peered replicas: one active, one standby
        "ClusterRole/kq-kubeq",
        "ClusterRoleBinding/kq-kubeq",
        "Deployment/kq-kubeq",
        "Pod/kq-kubeq-test",
        "PodDisruptionBudget/kq-kubeq",  # a drain takes one replica at a time
        "Role/kq-kubeq-secrets",  # Secret reads in the release namespace only
        "RoleBinding/kq-kubeq-secrets",
        "Service/kq-kubeq-metrics",
        "ServiceAccount/kq-kubeq",
        "ValidatingAdmissionPolicy/kq-kubeq-pod-patches.kubeq.dev",
        "ValidatingAdmissionPolicyBinding/kq-kubeq-pod-patches.kubeq.dev",
    ]
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["image"] == "ghcr.io/kubeq/kubeq:0.1.0"  # tag falls back to appVersion
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["args"][:2] == ["operator", "--all-namespaces"]
    assert deploy["spec"]["replicas"] == 2
    assert container["args"][-4:] == ["--peering", "kubeq", "--peering-lifetime", "15"]
    assert {"livenessProbe", "readinessProbe", "resources"} <= set(container)


def test_namespaced_mode_grants_only_roles_in_the_served_namespaces() -> None:
    docs = render("--set", "rbac.scope=namespaced", "--set", "rbac.namespaces={shop,media}")
    roles = [d for d in docs if d["kind"] == "Role"]
    # the operator's Role and its Secret-reading Role, in each served namespace and no other
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["media", "media", "shop", "shop"]
    assert (
        sorted(r["metadata"]["name"] for r in roles)
        == ["kq-kubeq", "kq-kubeq"] + ["kq-kubeq-secrets"] * 2
    )
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert cluster_role["rules"] == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        }
    ]
    args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "--all-namespaces" not in args
    assert args[1:5] == ["--namespace", "shop", "--namespace", "media"]


def test_no_role_can_do_more_than_the_operator_needs() -> None:
    for docs in (render(), render("--set", "rbac.scope=namespaced")):
        for role in (d for d in docs if d["kind"] in ("ClusterRole", "Role")):
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] and "*" not in rule["resources"]
                if rule["resources"] == ["jobs"]:  # Job-mode pools replace unstarted Jobs
                    assert rule["apiGroups"] == ["batch"]
                    assert rule["verbs"] == ["list", "create", "delete"]
                    continue
                if rule["resources"] == ["deployments"]:  # an old version goes when drained
                    assert rule["apiGroups"] == ["apps"]
                    continue
                assert "delete" not in rule["verbs"]
                if "secrets" in rule["resources"]:
                    assert rule["verbs"] == ["get"]
    no_secrets = render("--set", "rbac.readSecrets=false")
    assert all(
        "secrets" not in rule["resources"]
        for d in no_secrets
        if d["kind"] == "ClusterRole"
        for rule in d["rules"]
    )


def test_monitors_need_both_the_value_and_the_prometheus_operator() -> None:
    on = [
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.podMonitor.enabled=true",
    ]
    assert not {"ServiceMonitor", "PodMonitor"} & {d["kind"] for d in render(*on)}
    assert not {"ServiceMonitor", "PodMonitor"} & {d["kind"] for d in render(*MONITORING)}
    docs = render(*on, *MONITORING)
    assert {"ServiceMonitor", "PodMonitor"} <= {d["kind"] for d in docs}
    podmon = next(d for d in docs if d["kind"] == "PodMonitor")
    assert podmon["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"


def test_optional_redis_has_aof_on_and_is_off_by_default() -> None:
    assert "StatefulSet" not in {d["kind"] for d in render()}
    sts = next(d for d in render("--set", "redis.enabled=true") if d["kind"] == "StatefulSet")
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["--appendonly", "yes"]


def test_bad_values_are_refused_by_the_schema() -> None:
    out = helm("template", "kq", str(CHART), "--set", "rbac.scope=everything")
    assert out.returncode != 0 and "/rbac/scope" in out.stderr
    out = helm("template", "kq", str(CHART), "--set", "operator.replica=2")
    assert out.returncode != 0 and "replica" in out.stderr


def test_chart_crd_is_the_operators_crd() -> None:
    chart_crd = (CHART / "crds" / "taskqueues.kubeq.dev.yaml").read_text()
    assert chart_crd == (ROOT / "manifests" / "crd" / "taskqueues.kubeq.dev.yaml").read_text()


def _exported_metric_names() -> set[str]:
    from kubeq.worker.metrics import WorkerMetrics
    from kubeq_operator import metrics as operator_metrics

    names: set[str] = set()
    for registry in (WorkerMetrics().registry, operator_metrics.REGISTRY):
        for family in registry.collect():
            names.add(family.name)
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            names.update(family.name + s for s in suffixes.get(family.type, []))
    return names


def test_dashboard_parses_and_queries_only_exported_metrics() -> None:
    dashboard = json.loads((CHART / "dashboards" / "kubeq.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    queried = {m for e in exprs for m in re.findall(r"\bkubeq_[a-z_]+", e)}
    missing = queried - _exported_metric_names()
    assert not missing, f"dashboard queries metrics nobody exports: {missing}"
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in (
        "backlog",
        "in flight",
        "desired",
        "outcome",
        "duration",
        "wait",
        "dead",
        "scaling",
    ):
        assert topic in titles
    configmap = next(
        d for d in render("--set", "dashboards.enabled=true") if d["kind"] == "ConfigMap"
    )
    assert json.loads(configmap["data"]["kubeq.json"]) == dashboard
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"


@pytest.mark.cluster
def test_kubeconform_strict_with_the_local_api_servers_schemas(
    local_cluster: Any, kubectl: Any, tmp_path: Path
) -> None:
    from tests.chart.kubeconform_schemas import LOCATION, from_crd, from_openapi_v2

    raw = kubectl("get", "--raw", "/openapi/v2")
    assert raw.returncode == 0, raw.stderr
    schemas = tmp_path / "schemas"
    assert from_openapi_v2(json.loads(raw.stdout), schemas) > 50
    for crd_file in sorted((CHART / "crds").glob("*.yaml")):
        from_crd(crd_file, schemas)
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    for n, extra in enumerate(
        [
            [],
            [
                "--set",
                "rbac.scope=namespaced",
                "--set",
                "redis.enabled=true",
                "--set",
                "dashboards.enabled=true",
            ],
        ]
    ):
        out = helm("template", "kq", str(CHART), "--namespace", "kubeq-system", *extra)
        assert out.returncode == 0, out.stderr
        (rendered / f"chart-{n}.yaml").write_text(out.stdout)
    (rendered / "crd.yaml").write_text((CHART / "crds" / "taskqueues.kubeq.dev.yaml").read_text())
    examples = sorted((ROOT / "examples").glob("*/taskqueue.yaml"))
    assert len(examples) >= 3
    exe = str(bin_dir() / "kubeconform")
    checked = subprocess.run(
        [
            exe,
            "-strict",
            "-summary",
            "-schema-location",
            str(schemas / LOCATION),
            str(rendered),
            str(ROOT / "manifests" / "kubeq.yaml"),
            *map(str, examples),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in checked.stdout, checked.stdout
    # the schemas have teeth: a typo in a field is refused
    bad = tmp_path / "bad.yaml"
    bad.write_text((rendered / "chart-0.yaml").read_text().replace("replicas: 2", "replica: 2"))
    refused = subprocess.run(
        [exe, "-strict", "-schema-location", str(schemas / LOCATION), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and "replica" in refused.stdout


@pytest.mark.cluster
def test_api_server_accepts_everything_the_chart_renders(kubectl: Any, k8s_namespace: str) -> None:
    crd = kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    assert crd.returncode == 0, crd.stderr
    for extra in (
        [],
        [
            "--set",
            "rbac.scope=namespaced",
            "--set",
            "redis.enabled=true",
            "--set",
            "dashboards.enabled=true",
        ],
    ):
        out = helm("template", "kq", str(CHART), "--namespace", k8s_namespace, *extra)
        assert out.returncode == 0, out.stderr
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
        assert "created (server dry run)" in applied.stdout
    examples = [
        *sorted((ROOT / "examples").glob("*/taskqueue.yaml")),
        *sorted((ROOT / "manifests" / "examples").glob("*.yaml")),
    ]
    for example in examples:
        applied = kubectl(
            "apply",
            "--dry-run=server",
            "--validate=strict",
            "-n",
            k8s_namespace,
            "-f",
            str(example),
        )
        assert applied.returncode == 0, f"{example}: {applied.stderr}"


def test_plain_manifests_are_the_chart_rendered_with_defaults(tmp_path: Path) -> None:
    out = subprocess.run(
        ["sh", str(ROOT / "hack" / "gen-manifests.sh")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HELM": str(bin_dir() / "helm"), "GEN_OUT": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    generated = (tmp_path / "kubeq.yaml").read_text()
    committed = (ROOT / "manifests" / "kubeq.yaml").read_text()
    assert generated == committed, "manifests/kubeq.yaml is stale: run `make manifests`"
    for example in sorted((tmp_path / "examples").glob("*.yaml")):
        committed_example = ROOT / "manifests" / "examples" / example.name
        assert committed_example.exists(), f"{committed_example} is missing: run `make manifests`"
        assert example.read_text() == committed_example.read_text(), (
            f"{committed_example} is stale: run `make manifests`"
        )
    assert len(list((tmp_path / "examples").glob("*.yaml"))) == 4
