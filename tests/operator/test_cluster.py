"""The operator against a real kube-apiserver: CRD schema, Deployment life cycle, status,
Events, and bad specs turned into conditions. The operator runs as its own process."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import (
    Api,
    OperatorProcess,
    free_port,
    install_crd,
    queue_of,
    taskqueue,
)

pytestmark = pytest.mark.cluster


def apply(kubectl: Any, body: dict[str, Any]) -> Any:
    return kubectl("apply", "-f", "-", input=json.dumps(body))


def test_crd_schema_refuses_bad_specs(kubectl: Any, k8s_namespace: str) -> None:
    install_crd(kubectl)
    url = "redis://127.0.0.1:1/0"
    cases = [
        ({"scaling": {"minReplicas": 3, "maxReplicas": 2}}, "minReplicas must be <="),
        ({"scaling": {"maxReplicas": -1}}, "spec.scaling.maxReplicas"),
        ({"scaling": {"maxReplicas": "lots"}}, "spec.scaling.maxReplicas"),
        ({"worker": {"concurrency": 0}}, "spec.worker.concurrency"),
        ({"worker": {"terminationGracePeriodSeconds": 4}}, "terminationGracePeriodSeconds"),
        ({"schedules": [{"name": "x", "cron": "every day", "task": "t"}]}, "cron"),
    ]
    for over, needle in cases:
        body = taskqueue("bad", k8s_namespace, url)
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(body["spec"].get(key), dict):
                body["spec"][key] = {**body["spec"][key], **value}
            else:
                body["spec"][key] = value
        r = apply(kubectl, body)
        assert r.returncode != 0, f"{over} was accepted"
        assert needle in r.stderr, r.stderr
    body = taskqueue("bad", k8s_namespace, "http://x")
    r = apply(kubectl, body)
    assert r.returncode != 0 and "spec.redis.url" in r.stderr
    # the example in manifests/ is valid
    r = kubectl(
        "apply", "--dry-run=server", "-n", k8s_namespace, "-f", "manifests/examples/taskqueue.yaml"
    )
    assert r.returncode == 0, r.stderr


def test_deployment_created_owned_rolled_deleted(
    operator: OperatorProcess, api: Api, kubectl: Any, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    api.create_tq(taskqueue("tq", ns, redis_url, scaling={"minReplicas": 1}))

    dep = wait_for(lambda: api.deployment(ns, "tq-worker"), timeout=30, message="Deployment")
    owner = dep.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("TaskQueue", "tq", True)
    assert dep.spec.replicas == 1
    c = dep.spec.template.spec.containers[0]
    assert c.command[:5] == ["kubeq", "--prefix", "kubeq", "worker", "e2e_tasks"]
    assert dep.spec.template.spec.termination_grace_period_seconds == 30

    def ready() -> Any:
        cond = api.condition(ns, "tq", "Ready")
        return cond if cond and cond["status"] == "True" else None

    wait_for(ready, timeout=30, message="Ready=True")
    tq = api.get_tq(ns, "tq")
    status = tq["status"]
    assert status["observedGeneration"] == tq["metadata"]["generation"]
    assert status["desiredReplicas"] == 1
    assert {c["type"] for c in status["conditions"]} == {"Ready", "RedisReachable", "Scaling"}
    wait_for(
        lambda: api.get_tq(ns, "tq")["status"].get("replicas") == 1,
        timeout=30,
        message="status.replicas == 1",
    )
    out = kubectl("get", "tq", "-n", ns).stdout
    assert out.split("\n")[0].split() == [
        "NAME",
        "BACKLOG",
        "IN-FLIGHT",
        "WORKERS",
        "DESIRED",
        "AGE",
    ]
    wait_for(
        lambda: "DeploymentCreated" in {e.reason for e in api.events(ns, "tq")},
        timeout=20,
        message="a DeploymentCreated event",
    )

    # a worker-spec change rolls the pods; the replicas stay where the policy put them
    old_hash = dep.spec.template.metadata.annotations["kubeq.dev/worker-hash"]
    api.patch_tq(ns, "tq", {"spec": {"worker": {"concurrency": 2}}})

    def rolled() -> Any:
        d = api.deployment(ns, "tq-worker")
        h = d.spec.template.metadata.annotations["kubeq.dev/worker-hash"]
        return d if h != old_hash else None

    dep = wait_for(rolled, timeout=30, message="template rolled")
    cmd = dep.spec.template.spec.containers[0].command
    assert cmd[cmd.index("--concurrency") + 1] == "2"
    assert dep.spec.replicas == 1
    wait_for(
        lambda: "WorkerSpecChanged" in {e.reason for e in api.events(ns, "tq")},
        timeout=20,
        message="a WorkerSpecChanged event",
    )

    # a Deployment deleted by hand comes back
    api.apps.delete_namespaced_deployment("tq-worker", ns)
    wait_for(
        lambda: (
            (d := api.deployment(ns, "tq-worker")) is not None
            and d.metadata.deletion_timestamp is None
            and d.metadata.uid != dep.metadata.uid
        ),
        timeout=60,
        message="Deployment re-created",
    )

    # deleting the TaskQueue deletes its Deployment (ownerReference, garbage collector)
    api.delete_tq(ns, "tq")
    wait_for(
        lambda: api.deployment(ns, "tq-worker") is None,
        timeout=60,
        message="Deployment garbage-collected",
    )
    assert operator.alive()


def test_bad_specs_become_conditions_and_others_still_served(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    # passes the schema's cron shape, but croniter refuses it
    api.create_tq(
        taskqueue(
            "badcron",
            ns,
            redis_url,
            schedules=[{"name": "n", "cron": "61 * * * *", "task": "e2e.work"}],
        )
    )
    api.create_tq(
        {
            **taskqueue("nosecret", ns, redis_url),
            "spec": {
                **taskqueue("nosecret", ns, redis_url)["spec"],
                "redis": {"url": redis_url, "secretRef": {"name": "missing"}},
            },
        }
    )
    api.create_tq(
        taskqueue("noredis", ns, f"redis://127.0.0.1:{free_port()}/0", scaling={"minReplicas": 2})
    )
    api.create_tq(taskqueue("good", ns, redis_url))

    def cond(name: str, type_: str, reason: str) -> Any:
        c = api.condition(ns, name, type_)
        return c if c and c["reason"] == reason else None

    c = wait_for(
        lambda: cond("badcron", "Ready", "InvalidSpec"), timeout=30, message="badcron InvalidSpec"
    )
    assert c["status"] == "False" and "spec.schedules[0].cron" in c["message"]
    assert api.deployment(ns, "badcron-worker") is None

    c = wait_for(
        lambda: cond("nosecret", "RedisReachable", "SecretNotFound"),
        timeout=30,
        message="nosecret SecretNotFound",
    )
    assert "spec.redis.secretRef" in c["message"] and "kubectl" in c["message"]

    c = wait_for(
        lambda: cond("noredis", "RedisReachable", "RedisUnreachable"),
        timeout=30,
        message="noredis RedisUnreachable",
    )
    assert "spec.redis.url" in c["message"]
    wait_for(
        lambda: cond("noredis", "Scaling", "ScalingHeld"),
        timeout=30,
        message="Scaling=False/ScalingHeld",
    )
    assert api.deployment(ns, "noredis-worker").spec.replicas == 2  # held, not zeroed
    wait_for(
        lambda: (
            {e.reason: e.type for e in api.events(ns, "noredis")}.get("RedisUnreachable")
            == "Warning"
        ),
        timeout=20,
        message="a RedisUnreachable Warning event",
    )
    wait_for(
        lambda: "InvalidSpec" in {e.reason for e in api.events(ns, "badcron")},
        timeout=20,
        message="an InvalidSpec event",
    )

    wait_for(lambda: cond("good", "Ready", "Serving"), timeout=30, message="good is served")
    assert api.deployment(ns, "good-worker") is not None

    # fixing the spec clears the condition
    api.patch_tq(
        ns,
        "badcron",
        {"spec": {"schedules": [{"name": "n", "cron": "1 * * * *", "task": "e2e.work"}]}},
    )
    wait_for(lambda: cond("badcron", "Ready", "Serving"), timeout=30, message="badcron fixed")
    assert operator.alive()


def test_scaling_decisions_are_events_and_status(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    import kubeq

    ns = k8s_namespace
    # jobs wait before the TaskQueue exists: it must scale from zero for them
    app = kubeq.App(redis_url)
    app.enqueue_many(
        [
            kubeq.Call("e2e.work", (i,), {"seconds": 0.01}, queue=queue_of("scaler", ns))
            for i in range(9)
        ]
    )
    api.create_tq(
        taskqueue(
            "scaler",
            ns,
            redis_url,
            scaling={"maxReplicas": 3, "jobsPerReplica": 4},
            worker={"tasks": "e2e_tasks"},
        )
    )
    wait_for(
        lambda: "ScaleUp" in {e.reason for e in api.events(ns, "scaler")},
        timeout=30,
        message="a ScaleUp event",
    )
    up = next(e for e in api.events(ns, "scaler") if e.reason == "ScaleUp")
    assert "0 -> 3 replicas" in up.message and "backlog=9" in up.message
    status = api.get_tq(ns, "scaler")["status"]
    assert status["desiredReplicas"] >= 1 and status.get("lastScaleTime")
    # the jobs run, then the workers go back to zero
    wait_for(lambda: app.redis.llen("e2e:runs") == 9, timeout=90, message="9 runs")
    wait_for(
        lambda: api.deployment(ns, "scaler-worker").spec.replicas == 0,
        timeout=90,
        message="back to zero",
    )
    wait_for(  # kopf posts Events asynchronously
        lambda: "ScaleToZero" in {e.reason for e in api.events(ns, "scaler")},
        timeout=20,
        message="a ScaleToZero event",
    )
    app.close()


def test_metrics_and_liveness(operator: OperatorProcess) -> None:
    import urllib.request

    def get(port: int, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return str(r.read().decode())

    text = wait_for(lambda: get(operator.metrics_port, "/metrics"), timeout=20, message="metrics")
    assert "kubeq_scale_events_total" in text or "kubeq_workers_desired" in text
    assert get(operator.liveness_port, "/healthz") is not None


def test_example_manifest_is_valid_yaml() -> None:
    from tests.operator.opsupport import ROOT

    doc = yaml.safe_load((ROOT / "manifests/examples/taskqueue.yaml").read_text())
    assert doc["kind"] == "TaskQueue"


def test_foreign_deployment_is_not_taken_over(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    labels = {"app": "other"}
    api.apps.create_namespaced_deployment(
        ns,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "clash-worker", "labels": labels},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{"name": "c", "image": "x", "command": ["sleep", "1"]}]
                    },
                },
            },
        },
    )
    api.create_tq(taskqueue("clash", ns, redis_url))
    c = wait_for(
        lambda: (
            (c := api.condition(ns, "clash", "Ready")) and c["reason"] == "DeploymentConflict" and c
        ),
        timeout=30,
        message="DeploymentConflict",
    )
    assert "clash-worker" in c["message"]
    dep = api.deployment(ns, "clash-worker")
    assert dep.spec.template.spec.containers[0].name == "c"  # untouched


def test_redis_errors_are_counted(operator: OperatorProcess) -> None:
    import urllib.request

    # test_bad_specs... made a TaskQueue whose Redis is unreachable
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics") as r:
        text = r.read().decode()
    assert 'kubeq_redis_errors_total{namespace="' in text, text[:2000]


def test_paused_queue_backlog_does_not_scale_up(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    import kubeq

    ns = k8s_namespace
    q = queue_of("paused", ns)
    app = kubeq.App(redis_url)
    app.queue(q).pause()
    app.enqueue_many([kubeq.Call("e2e.work", (i,), queue=q) for i in range(8)])
    api.create_tq(taskqueue("paused", ns, redis_url))
    wait_for(
        lambda: api.get_tq(ns, "paused").get("status", {}).get("backlog") == 8,
        timeout=30,
        message="status shows the backlog",
    )
    time.sleep(2)
    assert api.deployment(ns, "paused-worker").spec.replicas == 0
    app.queue(q).resume()
    wait_for(lambda: app.redis.llen("e2e:runs") == 8, timeout=60, message="jobs ran after resume")
    app.close()
