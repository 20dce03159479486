"""kopf registration: one daemon per TaskQueue runs that object's control loop.

Why one daemon and no create/update handlers: a single writer per TaskQueue (no races
between a handler that rolls the Deployment and a loop that scales it), and one code path
for creation, spec changes, operator restarts and a Deployment someone deleted. The loop
itself lives in ``loop.py`` and knows nothing of kopf; this module gives it the object's
body, a view of its worker Deployment and a way to post Events.

Deployments are read from a kopf index (a watch), not polled, so a poll costs no API
request. Each loop's passes fall on a grid (multiples of its delay on the monotonic clock,
``loop.on_grid``), so the loops of TaskQueues with the same poll interval read Redis at the
same instants and their reads go out as one pipeline (``redis_shared.StatsBatch``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf

from kubeq_operator import kube
from kubeq_operator.crd import (
    ANNOTATION_HASH,
    FINALIZER,
    GROUP,
    LABEL_MANAGED,
    LABEL_TASKQUEUE,
    MANAGED_BY,
    PLURAL,
    VERSION,
)
from kubeq_operator.loop import TaskQueueLoop, on_grid
from kubeq_operator.names import taskqueue_label
from kubeq_operator.reconcile import DeploymentView

log = logging.getLogger("kubeq_operator")

WorkerIndex = kopf.Index[tuple[str | None, str], DeploymentView]


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.posting.reporting_component = "kubeq-operator"
    settings.posting.level = logging.WARNING  # our own Events are posted explicitly
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30


@kopf.on.probe(id="apiserver", errors=kopf.ErrorsMode.PERMANENT)
async def apiserver_reachable(**_: Any) -> str:
    """Part of /healthz: kopf alone answers 200 while the API server is unreachable; this
    probe raises then, so /healthz answers 500 and the kubelet restarts the pod."""
    return await kube.server_version(timeout=5.0)


@kopf.index("apps", "v1", "deployments", labels={LABEL_MANAGED: MANAGED_BY})
def kubeq_workers(
    namespace: str | None,
    name: str,
    labels: kopf.Labels,
    annotations: kopf.Annotations,
    spec: kopf.Spec,
    status: kopf.Status,
    **_: Any,
) -> dict[tuple[str | None, str], DeploymentView]:
    taskqueue = labels.get(LABEL_TASKQUEUE, "")
    view = DeploymentView(
        name=name,
        replicas=int(spec.get("replicas") or 0),
        current=int(status.get("replicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        worker_hash=annotations.get(ANNOTATION_HASH),
    )
    return {(namespace, taskqueue): view}


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def taskqueue_loop(
    name: str,
    namespace: str | None,
    body: kopf.Body,
    logger: kopf.Logger,
    stopped: kopf.DaemonStopped,
    **kwargs: Any,
) -> None:
    index: WorkerIndex = kwargs["kubeq_workers"]
    ns = namespace or "default"

    def find_deployment() -> DeploymentView | None:
        views = list(index.get((ns, taskqueue_label(name)), []))
        return views[0] if views else None

    def post_event(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    loop = TaskQueueLoop(ns, name, body, logger, find_deployment, post_event)
    try:
        while not stopped:
            delay = await loop.step()
            await stopped.wait(on_grid(delay, time.monotonic()))
    finally:
        await loop.close()
