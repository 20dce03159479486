"""Deleting a namespace that holds TaskQueues, against the real API server: the operator lets
them go quietly. It posts no Event into the namespace being deleted (the API server refuses
new objects there with 403 Forbidden), and logs no warning or error for TaskQueues that are
simply going away.

The API server counts the refused Event posts of every client, so the namespace is deleted
only once the cluster's own controllers are done with the TaskQueues' Deployments: each has
its ReplicaSet and pod, and their Events (ScalingReplicaSet, SuccessfulCreate) are posted. On
a loaded machine those controllers lag the operator by seconds, and their Events still
queued when the namespace starts terminating (or the deployment controller's FailedCreate for
a ReplicaSet it can no longer create) are refused and were counted here as the operator's.

kopf annotates an object (``touch-dummy``) to wake itself while a daemon is slow to stop, and
removes that annotation with its next patch; a TaskQueue whose only annotation it was is
deleted here too, as on a loaded machine, and the operator must not warn about it either.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubeq_operator.names import deployment_name
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import OperatorProcess, install_crd, taskqueue

pytestmark = pytest.mark.cluster

NOWHERE = {"podTemplate": {"spec": {"nodeSelector": {"kubeq.dev/none": "x"}}}}
COUNT = 20
EVENT_POSTS = re.compile(r"^apiserver_request_total\{([^}]*)\} (\S+)$", re.M)


def refused_event_posts(api_client: Any) -> float:
    """Event creations the API server answered with a 4xx, over its life (every client's)."""
    method, url, headers, body, _ = api_client.param_serialize(
        "GET", "/metrics", auth_settings=["BearerToken"]
    )
    r = api_client.call_api(method, url, header_params=headers, body=body)
    r.read()
    total = 0.0
    for m in EVENT_POSTS.finditer(r.data.decode()):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m[1]))
        if (labels.get("verb"), labels.get("resource")) == ("POST", "events") and labels.get(
            "code", ""
        ).startswith("4"):
            total += float(m[2])
    return total


def controllers_settled(api: Any, ns: str, names: list[str]) -> bool:
    """Every Deployment has its pod, and the deployment and ReplicaSet controllers' Events
    about it are posted (they have nothing more to say until something changes)."""
    deployments = api.apps.list_namespaced_deployment(ns).items
    if len(deployments) != len(names) or any(
        (d.status.observed_generation or 0) < d.metadata.generation or d.status.replicas != 1
        for d in deployments
    ):
        return False
    reasons = [(e.involved_object.kind, e.reason) for e in api.core.list_namespaced_event(ns).items]
    return reasons.count(("Deployment", "ScalingReplicaSet")) >= len(names) and reasons.count(
        ("ReplicaSet", "SuccessfulCreate")
    ) >= len(names)


def test_a_namespace_deleted_with_its_taskqueues_gets_no_events_and_no_warnings(
    local_cluster: Any, kubectl: Any, api: Any, redis_url: str, tmp_path: Path
) -> None:
    install_crd(kubectl)
    ns = f"going-{int(time.time() * 1000) % 10**9}"
    api.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    op = OperatorProcess(local_cluster.kubeconfig, tmp_path / "operator.log")
    try:
        op.wait_ready()
        names = [f"tq{i}" for i in range(COUNT)]
        for n in names:
            api.create_tq(taskqueue(n, ns, redis_url, scaling={"minReplicas": 1}, worker=NOWHERE))

        def all_ready() -> bool:
            for n in names:
                c = api.condition(ns, n, "Ready")
                if (
                    c is None
                    or c["status"] != "True"
                    or api.deployment(ns, deployment_name(n)) is None
                ):
                    return False
            return True

        wait_for(all_ready, timeout=120, message="every TaskQueue Ready with its Deployment")
        wait_for(
            lambda: controllers_settled(api, ns, names),
            timeout=120,
            message="the cluster's controllers done with every Deployment",
        )
        time.sleep(2)  # a few passes with nothing to say
        refused_before = refused_event_posts(api.client)
        mark = len(op.log().splitlines())

        api.core.delete_namespace(ns)

        def gone() -> bool:
            try:
                api.core.read_namespace(ns)
            except ApiException as e:
                return e.status == 404
            return False

        wait_for(gone, timeout=180, interval=1, message=f"namespace {ns} deleted")
        time.sleep(3)  # anything still queued for it would be posted by now
        assert op.alive(), op.log()[-3000:]
        after = op.log().splitlines()[mark:]
        noise = [ln for ln in after if "[WARNING" in ln or "[ERROR" in ln or "Traceback" in ln]
        refused = refused_event_posts(api.client) - refused_before
        assert not noise, "the operator complained about TaskQueues going away:\n" + "\n".join(
            noise[:20]
        )
        assert refused == 0, f"{refused:.0f} Event posts refused by the API server"
    finally:
        assert op.stop() == 0, op.log()[-3000:]


def test_a_taskqueue_deleted_with_only_kopfs_touch_annotation_logs_no_warning(
    local_cluster: Any, kubectl: Any, api: Any, k8s_namespace: str, redis_url: str, tmp_path: Path
) -> None:
    install_crd(kubectl)
    ns = k8s_namespace
    op = OperatorProcess(local_cluster.kubeconfig, tmp_path / "operator.log")
    try:
        op.wait_ready()
        api.create_tq(taskqueue("touched", ns, redis_url, worker=NOWHERE))
        wait_for(
            lambda: (api.condition(ns, "touched", "Ready") or {}).get("status") == "True",
            timeout=120,
            message="the TaskQueue Ready",
        )
        # what kopf writes when it wakes itself while a daemon stops (a timestamp)
        kubectl(
            "annotate", "taskqueues", "touched", "-n", ns,
            "kopf.zalando.org/touch-dummy=2026-12-04T00:00:00+00:00", check=True,
        )  # fmt: skip
        assert set(api.get_tq(ns, "touched")["metadata"]["annotations"]) == {
            "kopf.zalando.org/touch-dummy"
        }
        mark = len(op.log().splitlines())
        api.delete_tq(ns, "touched")

        def gone() -> bool:
            try:
                api.get_tq(ns, "touched")
            except ApiException as e:
                return e.status == 404
            return False

        wait_for(gone, timeout=120, interval=0.5, message="the TaskQueue deleted")
        time.sleep(2)
        after = op.log().splitlines()[mark:]
        noise = [ln for ln in after if "[WARNING" in ln or "[ERROR" in ln or "Traceback" in ln]
        assert not noise, "the operator warned about a TaskQueue going away:\n" + "\n".join(
            noise[:20]
        )
        events = [e.reason for e in api.core.list_namespaced_event(ns).items if e.type == "Warning"]
        assert not events, f"Warning Events posted: {events}"
    finally:
        assert op.stop() == 0, op.log()[-3000:]
