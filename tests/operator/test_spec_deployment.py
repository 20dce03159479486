"""Spec parsing, the Deployment manifest, pod-deletion costs and cron due times (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from kubeq import defaults
from kubeq.schedules_time import fires_between
from kubeq_operator import deployment, podcost
from kubeq_operator.spec import SpecError, parse


def spec(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "redis": {"url": "redis://redis:6379/0", "secretRef": {"name": "auth"}},
        "queues": ["high", "default"],
        "worker": {
            "image": "shop:1",
            "tasks": "shop.tasks",
            "concurrency": 8,
            "env": [{"name": "A", "value": "1"}],
            "terminationGracePeriodSeconds": 120,
        },
        "scaling": {"minReplicas": 0, "maxReplicas": 50},
        "schedules": [{"name": "nightly", "cron": "0 3 * * *", "task": "shop.tasks.report"}],
    }
    doc.update(over)
    return doc


def test_defaults_and_derived_values() -> None:
    s = parse(spec())
    assert s.queues == ("high", "default")
    assert s.scaling.jobs_per_replica == 8  # defaults to the concurrency
    assert s.scaling.stabilization_seconds == defaults.STABILIZATION_SECONDS
    assert s.worker.drain_timeout == 115
    assert s.schedules[0].queue == "high"
    assert s.redis.secret_ref is not None and s.redis.secret_ref.key == "password"
    assert s.rate_limits == ()
    limited = parse(spec(rateLimits={"default": "20/s"}))
    assert [(q, str(rl)) for q, rl in limited.rate_limits] == [("default", "20/s")]


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"redis": {"url": "http://x"}}, "spec.redis.url"),
        ({"queues": []}, "spec.queues"),
        ({"queues": ["a{b}"]}, "spec.queues[0]"),
        ({"scaling": {"minReplicas": 5, "maxReplicas": 2}}, "spec.scaling.minReplicas"),
        ({"scaling": {"maxReplicas": "many"}}, "spec.scaling.maxReplicas"),
        (
            {"schedules": [{"name": "x", "cron": "61 * * * *", "task": "t"}]},
            "spec.schedules[0].cron",
        ),
        (
            {"schedules": [{"name": "x", "every": 60, "task": "t", "timezone": "Berlin"}]},
            "spec.schedules[0].timezone",
        ),
        (
            {"schedules": [{"name": "x", "every": 60, "task": "t", "overlap": "queue"}]},
            "spec.schedules[0].overlap",
        ),
        (
            {"schedules": [{"name": "x", "task": "t"}]},
            "spec.schedules[0].cron",
        ),
        (
            {"schedules": [{"name": "x", "every": 60, "task": "t", "queue": "a{b}"}]},
            "spec.schedules[0].queue",
        ),
        ({"worker": {"image": "i"}}, "spec.worker.tasks"),
        ({"rateLimits": {"default": "10/day"}}, "spec.rateLimits.default"),
        ({"rateLimits": {"other": "10/s"}}, "spec.rateLimits.other"),
        ({"rateLimits": ["10/s"]}, "spec.rateLimits"),
    ],
)
def test_errors_name_the_field(over: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as e:
        parse(spec(**over))
    assert e.value.field == field
    assert str(e.value).startswith(field)


def test_deployment_manifest() -> None:
    s = parse(spec())
    m = deployment.build("thumbs", "shop", s, replicas=3)
    assert m["metadata"]["name"] == "thumbs-worker"
    assert m["spec"]["replicas"] == 3
    pod = m["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 120
    c = pod["containers"][0]
    assert c["command"][:5] == ["kubeq", "--prefix", "kubeq", "worker", "shop.tasks"]
    assert c["command"][5:9] == ["--queue", "high", "--queue", "default"]
    assert c["command"][c["command"].index("--drain-timeout") + 1] == "115"
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["KUBEQ_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "auth",
        "key": "password",
    }
    assert env["A"]["value"] == "1"
    labels = m["spec"]["template"]["metadata"]["labels"]
    assert m["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_worker_hash_changes_with_the_worker_spec_only() -> None:
    a = parse(spec())
    b = parse(spec(scaling={"minReplicas": 1, "maxReplicas": 9}))
    c = parse(spec(worker={"image": "shop:2", "tasks": "shop.tasks"}))
    assert a.worker_hash() == b.worker_hash()
    assert a.worker_hash() != c.worker_hash()


def test_pod_costs_idle_first() -> None:
    busy = podcost.busy_by_pod([{"p1:1:a": 2, "p2:1:b": 0}, {"p1:1:a": 1, "p3:7:c": 0}])
    assert busy == {"p1": 3, "p2": 0, "p3": 0}
    changes = podcost.plan({"p1": None, "p2": None, "p3": "-100", "p4": None}, busy)
    assert changes == {"p1": 1003, "p2": -100, "p4": -100}
    assert changes["p1"] > changes["p2"]


def test_cron_due_times() -> None:
    timing = parse(spec()).schedules[0].timing
    t0 = datetime(2026, 1, 1, 2, 59, 30, tzinfo=UTC).timestamp()
    t1 = datetime(2026, 1, 1, 3, 0, 0, tzinfo=UTC).timestamp()
    assert fires_between(timing, t0, t1, 10) == [int(t1)]
    assert fires_between(timing, t1, t1 + 3600, 10) == []
    every_minute = replace(timing, cron="* * * * *")
    many = fires_between(every_minute, t0, t0 + 3600 * 24, 10)
    assert len(many) == 10 and many[-1] == t0 + 3600 * 24 - 30
