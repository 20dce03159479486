"""The chart's PrometheusRule, tested by Prometheus's own rule tester (`promtool test rules`).

The rules are rendered from the chart as a user enables them; each alert gets a case where it
fires and a neighbour where it must not, on series named and labelled as the real operator
and worker export them (checked against their registries here), plus the labels a scrape adds.
`make test` runs Debian's promtool (`make promtool`: the `prometheus` package, seconds to
install); PROMTOOL=path runs another build, e.g. the current Prometheus built from the Go
module proxy by hack/promtool/build.sh (`make promtool-bin`; a long build on 2 cores, so it is
not part of `make test`'s time budget).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from kubeq.worker.metrics import WorkerMetrics
from kubeq_operator import metrics as operator_metrics
from tests.judges.judges import ROOT, helm_template

ALERTS = [
    "KubeqOldestWaitOverTarget",
    "KubeqDeadLettersGrowing",
    "KubeqWorkersNotConsuming",
    "KubeqOperatorNotReconciling",
    "KubeqRedisUnreachable",
    "KubeqScalingCapped",
]
OP = {"job": "kubeq", "instance": "10.0.0.5:9090"}  # the ServiceMonitor keeps namespace/taskqueue
POD = {"job": "shop/kubeq-workers", "pod": "orders-worker-1", "instance": "10.0.1.7:9090"}


def promtool() -> Path:
    if os.environ.get("PROMTOOL"):  # another build of promtool
        return Path(os.environ["PROMTOOL"])
    found = shutil.which("promtool")  # Debian's (make promtool)
    if found:
        return Path(found)
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "promtool" / "build.sh"), "--path"],
        capture_output=True,
        text=True,
        check=True,
    )
    path = Path(out.stdout.strip())
    if not path.exists():
        pytest.fail(
            f"no promtool on PATH nor at {path}: run `make promtool` (Debian's) "
            "or `make promtool-bin` (built from the Go module proxy)",
            pytrace=False,
        )
    return path


def exported() -> set[str]:
    """Every series name the real exporters produce (after one sample of each)."""
    w = WorkerMetrics()
    w.jobs.labels("q", "t", "finished").inc()
    w.redis_errors.inc()
    tq = ("ns", "tq")
    for g in (
        operator_metrics.workers_max,
        operator_metrics.target_wait,
        operator_metrics.last_pass,
        operator_metrics.workers_desired,
        operator_metrics.workers_current,
        operator_metrics.redis_errors,
    ):
        g.labels(*tq)
    for g in (operator_metrics.backlog, operator_metrics.oldest_age):
        g.labels(*tq, "q")
    text = (generate_latest(w.registry) + generate_latest(operator_metrics.REGISTRY)).decode()
    return {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"
    }


def s(name: str, values: str, scrape: dict[str, str], **labels: str) -> dict[str, str]:
    """One input series: ``name`` must be what the real exporters export."""
    assert name in NAMES, f"{name} is not exported by the operator or the worker"
    body = ",".join(f'{k}="{v}"' for k, v in {**labels, **scrape}.items())
    return {"series": f"{name}{{{body}}}", "values": values}


NAMES: set[str] = set()


def alert(name: str, at: str, *fired: dict[str, str]) -> dict[str, Any]:
    anchor = name.lower()
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [
            {
                "exp_labels": labels,
                "exp_annotations": {
                    **SUMMARY[name](labels),
                    "runbook_url": f"https://kubeq.dev/docs/monitoring#{anchor}",
                },
            }
            for labels in fired
        ],
    }


def _who(lb: dict[str, str]) -> str:
    return f"{lb['namespace']}/{lb['taskqueue']}"


SUMMARY: dict[str, Any] = {
    "KubeqOldestWaitOverTarget": lambda lb: {
        "summary": f"{_who(lb)}: the oldest job of queue {lb['queue']} has waited longer "
        "than its target"
    },
    "KubeqDeadLettersGrowing": lambda lb: {
        "summary": f"{_who(lb)}: jobs of queue {lb['queue']} are being dead-lettered"
    },
    "KubeqWorkersNotConsuming": lambda lb: {
        "summary": f"{_who(lb)}: workers run but consume nothing while jobs wait"
    },
    "KubeqOperatorNotReconciling": lambda lb: {
        "summary": f"{_who(lb)}: the operator has not completed a pass of this TaskQueue recently"
    },
    "KubeqRedisUnreachable": lambda lb: {
        "summary": f"{_who(lb)}: the operator cannot read Redis (replicas are held)"
    },
    "KubeqScalingCapped": lambda lb: {"summary": f"{_who(lb)}: at maxReplicas with jobs waiting"},
}


def cases() -> list[dict[str, Any]]:
    tq = {"namespace": "shop"}
    orders, reports, batch = ({**tq, "taskqueue": n} for n in ("orders", "reports", "batch"))
    q = {"queue": "default"}
    return [
        {  # oldest wait: over the TaskQueue's own target, or over the default without one
            "interval": "1m",
            "input_series": [
                s("kubeq_target_wait_seconds", "120x20", OP, **orders),
                s("kubeq_queue_oldest_job_age_seconds", "200x20", OP, **orders, **q),
                s("kubeq_workers_max", "10x20", OP, **reports),
                s("kubeq_queue_oldest_job_age_seconds", "200x20", OP, **reports, **q),
                s("kubeq_workers_max", "10x20", OP, **batch),
                s("kubeq_queue_oldest_job_age_seconds", "400x20", OP, **batch, **q),
            ],
            "alert_rule_test": [
                alert("KubeqOldestWaitOverTarget", "3m"),  # not for 5m yet
                alert(
                    "KubeqOldestWaitOverTarget",
                    "10m",
                    {"severity": "warning", **batch, **q},
                    {"severity": "warning", **orders, **q},
                ),
            ],
        },
        {  # dead letters growing in one queue, not in the other
            "interval": "1m",
            "input_series": [
                s(
                    "kubeq_jobs_total",
                    "0+2x30",
                    POD,
                    **orders,
                    **q,
                    task="shop.pay",
                    outcome="failed",
                ),
                s(
                    "kubeq_jobs_total",
                    "5x30",
                    POD,
                    **orders,
                    queue="mail",
                    task="shop.mail",
                    outcome="failed",
                ),
            ],
            "alert_rule_test": [
                alert("KubeqDeadLettersGrowing", "20m", {"severity": "warning", **orders, **q}),
            ],
        },
        {  # jobs wait, workers exist, nothing settles (orders); reports consumes
            "interval": "1m",
            "input_series": [
                s("kubeq_queue_backlog", "5x40", OP, **orders, **q),
                s("kubeq_workers_current", "2x40", OP, **orders),
                s(
                    "kubeq_jobs_total",
                    "7x40",
                    POD,
                    **orders,
                    **q,
                    task="shop.pay",
                    outcome="finished",
                ),
                s("kubeq_queue_backlog", "5x40", OP, **reports, **q),
                s("kubeq_workers_current", "2x40", OP, **reports),
                s(
                    "kubeq_jobs_total",
                    "0+10x40",
                    POD,
                    **reports,
                    **q,
                    task="r.x",
                    outcome="finished",
                ),
            ],
            "alert_rule_test": [
                alert("KubeqWorkersNotConsuming", "30m", {"severity": "critical", **orders}),
            ],
        },
        {  # the operator stopped (its series went stale) for orders; reports keeps passing
            "interval": "1m",
            "input_series": [
                s("kubeq_reconcile_last_success_timestamp_seconds", "0+60x5 stale", OP, **orders),
                s("kubeq_reconcile_last_success_timestamp_seconds", "0+60x30", OP, **reports),
            ],
            "alert_rule_test": [
                alert("KubeqOperatorNotReconciling", "7m"),
                alert("KubeqOperatorNotReconciling", "15m", {"severity": "critical", **orders}),
            ],
        },
        {  # Redis errors every poll for orders; one blip long ago for reports
            "interval": "1m",
            "input_series": [
                s("kubeq_redis_errors_total", "0+4x20", OP, **orders),
                s("kubeq_redis_errors_total", "0 1 1x20", OP, **reports),
            ],
            "alert_rule_test": [
                alert("KubeqRedisUnreachable", "10m", {"severity": "critical", **orders}),
            ],
        },
        {  # at maxReplicas with a backlog for 20 minutes; reports has room left
            "interval": "1m",
            "input_series": [
                s("kubeq_workers_desired", "10x30", OP, **orders),
                s("kubeq_workers_max", "10x30", OP, **orders),
                s("kubeq_queue_backlog", "50x30", OP, **orders, **q),
                s("kubeq_workers_desired", "4x30", OP, **reports),
                s("kubeq_workers_max", "10x30", OP, **reports),
                s("kubeq_queue_backlog", "50x30", OP, **reports, **q),
            ],
            "alert_rule_test": [
                alert("KubeqScalingCapped", "10m"),
                alert("KubeqScalingCapped", "20m", {"severity": "warning", **orders}),
            ],
        },
    ]


def test_each_alert_fires_where_it_should_and_only_there(tmp_path: Path) -> None:
    NAMES.update(exported())
    out = helm_template(
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--api-versions",
        "monitoring.coreos.com/v1/PrometheusRule",
        "--show-only",
        "templates/prometheusrule.yaml",
    )
    rule = yaml.safe_load(out)
    names = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert names == ALERTS
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": cases()}
    tested = {t["alertname"] for c in tests["tests"] for t in c["alert_rule_test"]}
    assert tested == set(ALERTS)
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    exe = str(promtool())
    check = subprocess.run(
        [exe, "check", "rules", "rules.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run(
        [exe, "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_off_by_default_and_each_runbook_exists() -> None:
    assert "PrometheusRule" not in helm_template(
        "--api-versions", "monitoring.coreos.com/v1/PrometheusRule"
    )
    headings = {
        line.lstrip("#").strip().lower()
        for line in (ROOT / "docs" / "monitoring.md").read_text().splitlines()
        if line.startswith("### ")
    }
    assert {a.lower() for a in ALERTS} <= headings
