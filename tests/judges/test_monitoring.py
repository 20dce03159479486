"""Monitoring end to end: a live worker pod's and the live operator's /metrics are lint-clean
(promlint), and their series, labelled as Prometheus labels them through the chart's
ServiceMonitor and PodMonitor, carry the namespace and taskqueue the dashboard's queries and
variables filter on."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from localcluster.pytest_plugin import wait_for
from tests.judges.judges import CHART, helm_template, judges_dir
from tests.judges.prometheus_relabel import Labels, attach, sanitize, target_labels
from tests.operator.opsupport import Api, OperatorProcess, free_port, queue_of, taskqueue

pytestmark = pytest.mark.cluster

OPERATOR_NAMESPACE = "kubeq-system"


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def promlint(text: str) -> subprocess.CompletedProcess[str]:
    exe = judges_dir() / "bin" / "promlint"
    return subprocess.run(
        [str(exe)], input=text, capture_output=True, text=True, check=False, timeout=60
    )


def samples(text: str) -> list[Labels]:
    return [
        {"__name__": s.name, **s.labels}
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def monitors() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    docs = [
        d
        for d in yaml.safe_load_all(
            helm_template(
                "--set",
                "metrics.serviceMonitor.enabled=true",
                "--set",
                "metrics.podMonitor.enabled=true",
                "--api-versions",
                "monitoring.coreos.com/v1/ServiceMonitor",
                "--api-versions",
                "monitoring.coreos.com/v1/PodMonitor",
            )
        )
        if d
    ]
    sm = next(d for d in docs if d["kind"] == "ServiceMonitor")
    pm = next(d for d in docs if d["kind"] == "PodMonitor")
    return sm, pm, docs


def operator_series(sm: dict[str, Any], docs: list[dict[str, Any]], text: str) -> list[Labels]:
    """The operator's samples as Prometheus stores them through the ServiceMonitor."""
    service = next(d for d in docs if d["kind"] == "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    endpoint = sm["spec"]["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    discovered = {
        "__address__": "10.0.0.5:9090",
        "__meta_kubernetes_namespace": OPERATOR_NAMESPACE,
        "__meta_kubernetes_service_name": service["metadata"]["name"],
        "__meta_kubernetes_pod_name": "kq-kubeq-5d9c7-x2x4p",
        "__meta_kubernetes_pod_container_name": "operator",
        "__meta_kubernetes_endpoint_port_name": endpoint["port"],
    }
    generated = [  # what the Prometheus Operator gives every ServiceMonitor target
        {"sourceLabels": ["__meta_kubernetes_namespace"], "targetLabel": "namespace"},
        {"sourceLabels": ["__meta_kubernetes_service_name"], "targetLabel": "service"},
        {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod"},
        {"sourceLabels": ["__meta_kubernetes_pod_container_name"], "targetLabel": "container"},
        {"sourceLabels": ["__meta_kubernetes_service_name"], "targetLabel": "job"},
        {"targetLabel": "endpoint", "replacement": endpoint["port"]},
    ]
    target = target_labels(discovered, generated + endpoint.get("relabelings", []))
    honor = bool(endpoint.get("honorLabels", False))
    return [attach(s, target, honor) for s in samples(text)]


def worker_series(pm: dict[str, Any], pod: Any, text: str) -> list[Labels]:
    """A worker pod's samples as Prometheus stores them through the PodMonitor."""
    labels = pod.metadata.labels
    assert pm["spec"]["selector"]["matchLabels"].items() <= labels.items()
    endpoint = pm["spec"]["podMetricsEndpoints"][0]
    container = pod.spec.containers[0]
    assert endpoint["port"] in {p.name for p in container.ports or []}
    discovered = {
        "__address__": "10.0.0.7:9090",
        "__meta_kubernetes_namespace": pod.metadata.namespace,
        "__meta_kubernetes_pod_name": pod.metadata.name,
        "__meta_kubernetes_pod_container_name": container.name,
        "__meta_kubernetes_pod_container_port_name": endpoint["port"],
        **{f"__meta_kubernetes_pod_label_{sanitize(k)}": v for k, v in labels.items()},
    }
    generated = [  # what the Prometheus Operator gives every PodMonitor target
        {"sourceLabels": ["__meta_kubernetes_namespace"], "targetLabel": "namespace"},
        {"sourceLabels": ["__meta_kubernetes_pod_container_name"], "targetLabel": "container"},
        {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod"},
        {
            "targetLabel": "job",
            "replacement": f"{pm['metadata']['namespace']}/{pm['metadata']['name']}",
        },
        {"targetLabel": "endpoint", "replacement": endpoint["port"]},
    ]
    target = target_labels(discovered, generated + endpoint.get("relabelings", []))
    honor = bool(endpoint.get("honorLabels", False))
    return [attach(s, target, honor) for s in samples(text)]


SELECTOR = re.compile(r"\b(kubeq_[a-z_]+)\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
BY = re.compile(r"\bby\s*\(([^)]*)\)")


def matches(series: Labels, matchers: list[tuple[str, str, str]]) -> bool:
    for name, op, value in matchers:
        have = series.get(name, "")
        ok = {
            "=": have == value,
            "!=": have != value,
            "=~": re.fullmatch(value, have) is not None,
            "!~": re.fullmatch(value, have) is None,
        }[op]
        if not ok:
            return False
    return True


def dashboard_gaps(series: list[Labels], namespace: str, tq: str) -> tuple[list[str], int]:
    """Dashboard queries that find no series of a metric that exists, or whose ``by``
    labels those series lack; and how many (query, metric) pairs were checked."""
    dashboard = json.loads((CHART / "dashboards" / "kubeq.json").read_text())
    gaps: list[str] = []
    checked = 0
    for panel in dashboard["panels"]:
        for t in panel.get("targets", []):
            expr = t["expr"].replace("$namespace", namespace).replace("$taskqueue", tq)
            by = {x.strip() for grp in BY.findall(expr) for x in grp.split(",") if x.strip()}
            for metric, body in SELECTOR.findall(expr):
                of_metric = [s for s in series if s["__name__"] == metric]
                if not of_metric:
                    continue  # nothing of it yet (e.g. no Redis error happened)
                checked += 1
                matchers = MATCHER.findall(body)
                # the labelling decides namespace and taskqueue; other matchers (outcome="failed")
                # depend on what happened, so only their label's presence is checked
                scope = [m for m in matchers if m[0] in ("namespace", "taskqueue")]
                hits = [s for s in of_metric if matches(s, scope)]
                if not hits:
                    gaps.append(f"{panel['title']}: {metric}{{{body}}} finds none")
                    continue
                wanted = {m[0] for m in matchers} | {b for b in by if b != "le"}
                if missing := wanted - set(hits[0]):
                    gaps.append(f"{panel['title']}: {metric} lacks {sorted(missing)}")
    return gaps, checked


def label_values(series: list[Labels], metric: str, label: str) -> set[str]:
    return {s[label] for s in series if s["__name__"] == metric and label in s}


def test_live_metrics_are_lint_clean_and_labelled_as_the_dashboard_expects(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    import kubeq

    ns, name = k8s_namespace, "mon"
    port = free_port()
    api.create_tq(
        taskqueue(name, ns, redis_url, worker={"metricsPort": port}, scaling={"minReplicas": 1})
    )
    app = kubeq.App(redis_url)
    try:
        app.enqueue_many([kubeq.Call("e2e.work", (1,), queue=queue_of(name, ns))])
        wait_for(lambda: app.redis.llen("e2e:runs") == 1, timeout=90, message="the job ran")
    finally:
        app.close()
    worker_text = wait_for(
        lambda: (t := scrape(port)) and "kubeq_jobs_total{" in t and t,
        timeout=30,
        message="the worker pod's /metrics",
    )
    operator_text = wait_for(
        lambda: (t := scrape(operator.metrics_port)) and f'taskqueue="{name}"' in t and t,
        timeout=30,
        message="the operator's /metrics for the TaskQueue",
    )
    pod = next(p for p in api.pods(ns, name) if p.status.phase == "Running")

    for who, text in (("worker", worker_text), ("operator", operator_text)):
        linted = promlint(text)
        assert linted.returncode == 0, f"promlint on the {who}'s /metrics:\n{linted.stdout}"
        assert "_created" not in text, f"the {who} exports *_created series"

    sm, pm, docs = monitors()
    series = operator_series(sm, docs, operator_text) + worker_series(pm, pod, worker_text)
    ours = [s for s in series if s.get("taskqueue") == name]
    assert {s["namespace"] for s in ours} == {ns}, "namespace of the TaskQueue, not the operator's"
    assert not any("exported_namespace" in s for s in series)
    assert ns in label_values(series, "kubeq_queue_backlog", "namespace")  # $namespace variable
    assert name in label_values(series, "kubeq_queue_backlog", "taskqueue")  # $taskqueue variable
    assert {"kubeq_jobs_total", "kubeq_job_duration_seconds_bucket"} <= {
        s["__name__"] for s in ours
    }, "the worker's series carry namespace and taskqueue (PodMonitor relabelling)"
    gaps, checked = dashboard_gaps(series, ns, name)
    assert checked >= 10, f"only {checked} dashboard queries found series"
    assert not gaps, "\n".join(gaps)

    # without honorLabels, the operator's namespace hides the TaskQueue's
    sm["spec"]["endpoints"][0]["honorLabels"] = False
    broken = operator_series(sm, docs, operator_text)
    assert label_values(broken, "kubeq_queue_backlog", "namespace") == {OPERATOR_NAMESPACE}
    assert dashboard_gaps(broken, ns, name)[0]
