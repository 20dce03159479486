"""The Scaling page's view of the cluster: TaskQueues, their conditions and recent Events;
and the TaskQueues that own a queue, on which an admin action is posted as an Event.

Read-only, with the official kubernetes client, in-cluster or from a kubeconfig; without
either the page says "no cluster access" and the rest of the dashboard works unchanged. One
read (a list of TaskQueues and one of Events) joins the shared poll, so viewers do not add
load on the API server either. The operator writes what is shown here: ``status.replicas``
(current), ``status.desiredReplicas``, backlog/in flight, conditions, and an Event per change.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

from kubeq.crd import API_VERSION, GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)

EVENTS_PER_QUEUE = 10
TQ_EVENTS = "involvedObject.kind=TaskQueue"


def connect(kubeconfig: str | None = None) -> Any | None:
    """An ApiClient, or None when there is no in-cluster config and no usable kubeconfig."""
    try:
        from kubernetes import client, config  # noqa: PLC0415 - optional (kubeq[dashboard])
    except ImportError:
        return None
    try:  # (newer kubernetes clients only type these two calls: unused-ignore)
        config.load_incluster_config()  # type: ignore[no-untyped-call, unused-ignore]
        return client.ApiClient()
    except config.ConfigException:
        pass
    try:
        return config.new_client_from_config(  # type: ignore[no-untyped-call, unused-ignore]
            config_file=kubeconfig, persist_config=False
        )
    except (config.ConfigException, OSError, TypeError):
        return None


def _events_by_object(items: list[Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in items:
        obj = e.involved_object
        if obj is None or obj.kind != "TaskQueue":
            continue
        when = e.last_timestamp or e.event_time or e.first_timestamp
        out.setdefault((e.metadata.namespace, obj.name), []).append(
            {
                "type": e.type or "",
                "reason": e.reason or "",
                "message": e.message or "",
                "count": e.count or 1,
                "time": when.timestamp() if when is not None else 0.0,
            }
        )
    for events in out.values():
        events.sort(key=lambda ev: ev["time"], reverse=True)
        del events[EVENTS_PER_QUEUE:]
    return out


def read_view(api: Any, namespace: str | None = None) -> dict[str, Any]:
    """Every TaskQueue (in ``namespace`` or all) with status, conditions and recent Events."""
    from kubernetes import client  # noqa: PLC0415 - optional (kubeq[dashboard])

    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    if namespace:
        tqs = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.kind=TaskQueue"
        )
    else:
        tqs = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        events = core.list_event_for_all_namespaces(field_selector=TQ_EVENTS)
    by_object = _events_by_object(list(events.items or []))
    out = []
    items: list[dict[str, Any]] = tqs.get("items", []) if isinstance(tqs, dict) else []
    for tq in items:
        meta, spec, status = tq.get("metadata", {}), tq.get("spec", {}), tq.get("status", {}) or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        out.append(
            {
                "namespace": ns,
                "name": name,
                "queues": list(spec.get("queues", [])),
                "prefix": str((spec.get("redis") or {}).get("prefix") or "kubeq"),
                "desired": status.get("desiredReplicas"),
                "current": status.get("replicas"),
                "backlog": status.get("backlog"),
                "in_flight": status.get("inFlight"),
                "last_scale": status.get("lastScaleTime", ""),
                "conditions": [
                    {k: c.get(k, "") for k in ("type", "status", "reason", "message")}
                    for c in status.get("conditions", []) or []
                ],
                "events": by_object.get((ns, name), []),
            }
        )
    out.sort(key=lambda t: (t["namespace"], t["name"]))
    return {"taskqueues": out, "read_at": time.time()}


class ClusterReader:
    """The hub's cluster hook: reads the view off the event loop, at most every ``every`` s."""

    def __init__(self, api: Any, namespace: str | None = None, every: float = 2.0) -> None:
        self.api = api
        self.namespace = namespace
        self.every = every
        self._last: dict[str, Any] | None = None
        self._at = 0.0

    def owners(self, queue: str, prefix: str) -> list[tuple[str, str]]:
        """(namespace, name) of the TaskQueues last read that list ``queue`` (a partition
        counts as its queue) under ``prefix``."""
        name = queue.split("#", 1)[0]
        tqs = self._last["taskqueues"] if self._last else []
        return [
            (t["namespace"], t["name"])
            for t in tqs
            if name in t["queues"] and t.get("prefix", "kubeq") == prefix
        ]

    async def __call__(self) -> dict[str, Any]:
        if self._last is None or time.monotonic() - self._at >= self.every:
            self._last = await asyncio.to_thread(read_view, self.api, self.namespace)
            self._at = time.monotonic()
        return {
            "taskqueues": [dict(t) for t in self._last["taskqueues"]],
            "read_at": self._last["read_at"],
        }


def post_event(api: Any, namespace: str, name: str, reason: str, message: str) -> None:
    """A Normal Event on TaskQueue ``namespace/name`` from the dashboard; a failure is logged,
    never raised (the action is done; the audit stream has it)."""
    from kubernetes import client  # noqa: PLC0415 - optional (kubeq[dashboard])

    now = datetime.now(UTC).isoformat()
    body: Any = {
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": {"apiVersion": API_VERSION, "kind": KIND, "name": name,
                           "namespace": namespace},
        "reason": reason,
        "message": message[:1024],
        "type": "Normal",
        "source": {"component": "kubeq-dashboard"},
        "reportingComponent": "kubeq-dashboard",
        "reportingInstance": socket.gethostname(),
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }  # fmt: skip
    try:
        client.CoreV1Api(api).create_namespaced_event(namespace, body)
    except Exception as exc:
        log.warning("could not post the %s Event on %s/%s: %s", reason, namespace, name, exc)
