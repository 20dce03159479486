"""The new spec.worker fields on the local control plane: the CRD refuses bad resources, env
and owned podTemplate fields with the field's path; a podTemplate reaches the live worker
Deployment; one the API server refuses shows in the TaskQueue's Ready condition."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, install_crd, taskqueue

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize(
    ("worker", "needle"),
    [
        ({"image": ""}, "spec.worker.image"),
        ({"resources": {"limits": {"memory": "lots"}}}, "spec.worker.resources.limits.memory"),
        ({"env": [{"name": "A", "value": "1", "valueFrom": {}}]}, "value or valueFrom"),
        (
            {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}]},
            "spec.worker.env[0].valueFrom.secretKeyRef.key",
        ),
        (
            {"podTemplate": {"spec": {"terminationGracePeriodSeconds": 5}}},
            "set spec.worker.terminationGracePeriodSeconds instead",
        ),
        ({"podTemplate": {"metadata": {"labels": {"a": 1}}}}, "podTemplate.metadata.labels.a"),
    ],
)
def test_crd_refuses_bad_worker_fields(
    kubectl: Any, k8s_namespace: str, worker: dict[str, Any], needle: str
) -> None:
    install_crd(kubectl)
    body = taskqueue("bad", k8s_namespace, "redis://127.0.0.1:1/0", worker=worker)
    r = kubectl("apply", "-f", "-", input=json.dumps(body))
    assert r.returncode != 0, f"{worker} was accepted"
    assert needle in r.stderr, r.stderr


def test_pod_template_reaches_the_deployment_and_bad_ones_are_reported(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    template = {
        "metadata": {"labels": {"team": "shop"}},
        "spec": {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "system-cluster-critical",
            "volumes": [{"name": "cfg", "configMap": {"name": "settings", "optional": True}}],
            "containers": [
                {"name": "worker", "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}
            ],
        },
    }
    api.create_tq(taskqueue("tpl", ns, redis_url, worker={"podTemplate": template}))
    dep = wait_for(lambda: api.deployment(ns, "tpl-worker"), timeout=30, message="Deployment")
    pod = dep.spec.template
    assert pod.metadata.labels["team"] == "shop"
    assert pod.spec.node_selector == {"kubernetes.io/os": "linux"}
    assert pod.spec.tolerations[0].key == "batch"
    assert pod.spec.priority_class_name == "system-cluster-critical"
    assert pod.spec.security_context.seccomp_profile.type == "RuntimeDefault"
    worker = pod.spec.containers[0]
    assert [m.mount_path for m in worker.volume_mounts] == ["/tmp", "/cfg"]
    assert worker.security_context.read_only_root_filesystem is True

    # a template the API server refuses: the TaskQueue says so, naming the field
    bad = {"spec": {"tolerations": [{"key": "x", "operator": "Sometimes"}]}}
    api.create_tq(taskqueue("badtpl", ns, redis_url, worker={"podTemplate": bad}))

    def refused() -> str | None:
        cond = api.condition(ns, "badtpl", "Ready")
        return cond["message"] if cond and cond["status"] == "False" else None

    message = wait_for(refused, timeout=30, message="Ready=False for the refused template")
    assert "tolerations[0].operator" in message, message
    assert api.deployment(ns, "badtpl-worker") is None
