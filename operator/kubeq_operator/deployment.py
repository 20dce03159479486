"""Build the worker Deployment of a TaskQueue (a plain manifest dict; no API calls here).

Kept apart from the handlers so the manifest can be unit-tested. The pod template carries a
hash of the worker spec (``kubeq.dev/worker-hash``): when the hash differs from the live
Deployment's, the handlers patch the template and Kubernetes rolls the workers. The
operator owns ``spec.replicas``; a template update never touches it.
"""

from __future__ import annotations

from typing import Any

from .crd import (
    ANNOTATION_HASH,
    COMPONENT_WORKER,
    LABEL_COMPONENT,
    LABEL_MANAGED,
    LABEL_TASKQUEUE,
    MANAGED_BY,
)
from .spec import TaskQueueSpec

CONTAINER = "worker"


def deployment_name(taskqueue: str) -> str:
    return f"{taskqueue}-worker"


def selector_labels(taskqueue: str) -> dict[str, str]:
    return {LABEL_TASKQUEUE: taskqueue, LABEL_COMPONENT: COMPONENT_WORKER}


def worker_command(spec: TaskQueueSpec) -> list[str]:
    w = spec.worker
    # The Redis URL comes from KUBEQ_REDIS_URL (env), the password from KUBEQ_REDIS_PASSWORD.
    cmd = ["kubeq", "--prefix", spec.redis.prefix, "worker", w.tasks]
    for q in spec.queues:
        cmd += ["--queue", q]
    cmd += [
        "--concurrency",
        str(w.concurrency),
        "--pool",
        w.pool,
        "--drain-timeout",
        str(w.drain_timeout),
    ]
    if w.lease_seconds:
        cmd += ["--lease", str(w.lease_seconds)]
    if w.metrics_port:
        cmd += ["--metrics-port", str(w.metrics_port)]
    return cmd


def worker_env(spec: TaskQueueSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "KUBEQ_REDIS_URL", "value": spec.redis.url},
    ]
    ref = spec.redis.secret_ref
    if ref is not None:
        env.append(
            {
                "name": "KUBEQ_REDIS_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    reserved = {e["name"] for e in env}
    env += [dict(e) for e in spec.worker.env if e["name"] not in reserved]
    return env


def build(name: str, namespace: str, spec: TaskQueueSpec, replicas: int) -> dict[str, Any]:
    """The Deployment manifest for TaskQueue ``namespace/name`` (no ownerReference yet)."""
    w = spec.worker
    labels = {**selector_labels(name), LABEL_MANAGED: MANAGED_BY}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": w.image,
        "command": worker_command(spec),
        "env": worker_env(spec),
        "resources": dict(w.resources),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if w.working_dir:
        container["workingDir"] = w.working_dir
    if w.image_pull_policy:
        container["imagePullPolicy"] = w.image_pull_policy
    if w.metrics_port:
        container["ports"] = [{"name": "metrics", "containerPort": w.metrics_port}]
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "terminationGracePeriodSeconds": w.termination_grace_period_seconds,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
        "automountServiceAccountToken": False,
    }
    if w.service_account_name:
        pod_spec["serviceAccountName"] = w.service_account_name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(name),
            "namespace": namespace,
            "labels": labels,
            "annotations": {ANNOTATION_HASH: spec.worker_hash()},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(name)},
            # New workers come up before old ones drain: a rollout never lowers capacity.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {ANNOTATION_HASH: spec.worker_hash()},
                },
                "spec": pod_spec,
            },
        },
    }
