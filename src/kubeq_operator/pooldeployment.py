"""Build a worker pool's Deployment (a plain manifest dict; no API calls here).

It is the TaskQueue's worker Deployment (``deployment.build``) as the pool sees the spec
(``TaskQueueSpec.of_pool``: its queues, worker and scaling), renamed (``<name>-<pool>-pool``)
and labelled with the TaskQueue and the pool. Its pods' component is ``pool-worker``, not
``worker``, so the selector of the TaskQueue's own Deployment never matches a pool's pods,
and the selector of each pool names the pool.
"""

from __future__ import annotations

from typing import Any

from kubeq_operator.crd import (
    ANNOTATION_HASH,
    COMPONENT_POOL,
    LABEL_COMPONENT,
    LABEL_MANAGED,
    LABEL_POOL,
    LABEL_TASKQUEUE,
    MANAGED_BY,
)
from kubeq_operator.deployment import build as build_worker
from kubeq_operator.names import pool_deployment_name, taskqueue_label
from kubeq_operator.poolspec import PoolSpec
from kubeq_operator.spec import TaskQueueSpec


def selector_labels(taskqueue: str, pool: str) -> dict[str, str]:
    return {
        LABEL_TASKQUEUE: taskqueue_label(taskqueue),
        LABEL_COMPONENT: COMPONENT_POOL,
        LABEL_POOL: pool,
    }


def build(
    taskqueue: str, namespace: str, spec: TaskQueueSpec, pool: PoolSpec, replicas: int
) -> dict[str, Any]:
    """The Deployment manifest of ``pool`` of TaskQueue ``namespace/taskqueue``."""
    view = spec.of_pool(pool)
    manifest = build_worker(taskqueue, namespace, view, replicas)
    selector = selector_labels(taskqueue, pool.name)
    labels = {**selector, LABEL_MANAGED: MANAGED_BY}
    manifest["metadata"]["name"] = pool_deployment_name(taskqueue, pool.name)
    manifest["metadata"]["labels"] = labels
    manifest["metadata"]["annotations"] = {ANNOTATION_HASH: view.worker_hash()}
    manifest["spec"]["selector"] = {"matchLabels": selector}
    template_meta = manifest["spec"]["template"]["metadata"]
    template_meta["labels"] = {**template_meta.get("labels", {}), **labels}
    return manifest
