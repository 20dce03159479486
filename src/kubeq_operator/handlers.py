"""kopf registration: one daemon per TaskQueue runs that object's control loop.

Why one daemon and no create/update handlers: a single writer per TaskQueue (no races
between a handler that rolls the Deployment and a loop that scales it), and one code path
for creation, spec changes, operator restarts and a Deployment someone deleted. The loop
itself lives in ``loop.py`` and knows nothing of kopf; this module gives it the object's
body, a view of its worker Deployment and a way to post Events.

Deployments are read from a kopf index (a watch), not polled, so a poll costs no API
request. Each loop waits for its next pass on the shared poll clock (``ticker.TICKER``): the
loops of TaskQueues with the same poll interval wake at the same instants, on one timer, and
their Redis reads go out as one pipeline (``redis_shared.StatsBatch``).

kopf keeps no diff base here (:class:`NoDiffBase`): with no create/update handlers nothing
reads one, and building it deep-copies every TaskQueue and worker Deployment on every watch
event, most of them the operator's own status patches and the Deployments' status updates.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import kopf

from kubeq.cancelling import cancel_until_done
from kubeq_operator import kopflog, kube, peerhold, rollout, schedules
from kubeq_operator.crd import (
    ANNOTATION_HASH,
    FINALIZER,
    GROUP,
    LABEL_MANAGED,
    LABEL_POOL,
    LABEL_TASKQUEUE,
    LABEL_VERSION,
    MANAGED_BY,
    PLURAL,
    VERSION,
)
from kubeq_operator.loop import TaskQueueLoop
from kubeq_operator.names import taskqueue_label
from kubeq_operator.pools import Pools
from kubeq_operator.reconcile import DeploymentView
from kubeq_operator.ticker import TICKER

log = logging.getLogger("kubeq_operator")

WorkerIndex = kopf.Index[tuple[str | None, str], DeploymentView]


class NoDiffBase(kopf.DiffBaseStorage):
    """No last-handled state: only create/update/delete handlers compare with one, and the
    operator has none (one daemon per TaskQueue does everything). kopf still builds the
    "essence" of every object on every watch event (a deep copy of its body); this one
    builds nothing, stores nothing and annotates nothing."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return {}

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    kopflog.install()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.diffbase_storage = NoDiffBase()
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
        pool=labels.get(LABEL_POOL),
        version=labels.get(LABEL_VERSION),
    )
    return {(namespace, taskqueue): view}


CANCEL_RECHECK_SECONDS = 0.5
"""A pass still running this long after its cancellation is cancelled again (a cancellation
that arrives as a timeout inside the Redis client or ``asyncio.wait_for`` ends can be lost)."""


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_backoff=5.0, cancellation_timeout=10.0)
async def taskqueue_loop(
    name: str,
    namespace: str | None,
    body: kopf.Body,
    logger: kopf.Logger,
    stopped: kopf.DaemonStopped,
    **kwargs: Any,
) -> None:
    """Run the TaskQueue's passes until kopf stops the daemon (the TaskQueue or its namespace
    is deleted, the operator pauses for a peer or exits), then end them and return: kopf
    cancels a daemon only when it does not return within ``cancellation_backoff``, and a
    cancelled daemon is a warning it posts as an Event on the TaskQueue, into a namespace
    that may be going away. When the TaskQueue itself is deleted, its spec schedules leave
    Redis before the daemon returns (kopf removes the finalizer after that)."""
    index: WorkerIndex = kwargs["kubeq_workers"]
    ns = namespace or "default"

    def find_views() -> list[DeploymentView]:  # the TaskQueue's own: each version's
        return [v for v in index.get((ns, taskqueue_label(name)), []) if v.pool is None]

    def find_deployment() -> DeploymentView | None:
        return rollout.current(find_views(), loop.spec)

    def find_pools() -> dict[str, list[DeploymentView]]:  # each pool's: each version's
        out: dict[str, list[DeploymentView]] = {}
        for v in index.get((ns, taskqueue_label(name)), []):
            if v.pool is not None:
                out.setdefault(v.pool, []).append(v)
        return out

    def post_event(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    await peerhold.wait(stopped)  # a peer started at the same instant is seen first
    if stopped:  # paused for that peer (or exiting) during the hold
        return
    peerhold.active()
    loop = TaskQueueLoop(ns, name, body, logger, find_deployment, post_event)
    versions = rollout.Versions(loop, find_views)
    pools = Pools(loop, find_pools, versions)

    async def passes() -> None:
        while not stopped:  # (a cancellation lost inside a library's timeout ends it here)
            delay = await loop.step()
            await versions.step()
            await pools.step()
            await TICKER.wait(delay)

    running = asyncio.create_task(passes(), name=f"taskqueue {ns}/{name}")
    stop = asyncio.ensure_future(stopped.wait())  # one wait for the daemon's whole life
    try:
        await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        # cancelled again if a pass swallowed the cancellation (kopf's cancellation_timeout
        # bounds this wait: it cancels the daemon itself)
        await cancel_until_done([running], recheck=CANCEL_RECHECK_SECONDS)
        await asyncio.gather(running, stop, return_exceptions=True)
        why = stopped.reason
        deleted = why is not None and bool(why & kopf.DaemonStoppingReason.RESOURCE_DELETED)
        spec = loop.spec
        if deleted and spec is not None:  # the queues' pools go too
            await pools.forget()
            await versions.forget()
        if deleted and spec is not None and spec.schedules:  # its spec schedules go with it
            client_of = functools.partial(loop.source.client, spec)
            await schedules.forget_deleted(client_of, spec.redis.prefix, ns, name)
        await loop.close()
    if not running.cancelled() and running.exception() is not None:
        raise running.exception()  # type: ignore[misc]  # kopf logs it and restarts the daemon
