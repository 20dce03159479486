"""Deleting a namespace that holds TaskQueues with worker pools: the pools' pass lets them go
as quietly as the TaskQueue's own loop (no Event posted into the namespace being deleted, no
warning or error logged), as tests/operator/test_namespace_deletion.py asks of the loop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import OperatorProcess, install_crd, taskqueue
from tests.operator.test_namespace_deletion import NOWHERE, refused_event_posts

pytestmark = pytest.mark.cluster

COUNT = 4


def settled(api: Any, ns: str, count: int) -> bool:
    """Every Deployment (the TaskQueues' and their pools') has its pod and the cluster's
    controllers have posted their Events about it."""
    deployments = api.apps.list_namespaced_deployment(ns).items
    if len(deployments) != count or any(
        (d.status.observed_generation or 0) < d.metadata.generation or d.status.replicas != 1
        for d in deployments
    ):
        return False
    reasons = [(e.involved_object.kind, e.reason) for e in api.core.list_namespaced_event(ns).items]
    return (
        reasons.count(("Deployment", "ScalingReplicaSet")) >= count
        and reasons.count(("ReplicaSet", "SuccessfulCreate")) >= count
    )


def test_a_namespace_deleted_with_pools_gets_no_events_and_no_warnings(
    local_cluster: Any, kubectl: Any, api: Any, redis_url: str, tmp_path: Path
) -> None:
    install_crd(kubectl)
    ns = f"pools-going-{int(time.time() * 1000) % 10**9}"
    api.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    op = OperatorProcess(local_cluster.kubeconfig, tmp_path / "operator.log")
    try:
        op.wait_ready()
        pools = [{"name": "gpu", "scaling": {"minReplicas": 1}}]
        for i in range(COUNT):
            api.create_tq(
                taskqueue(
                    f"tq{i}", ns, redis_url, scaling={"minReplicas": 1}, worker=NOWHERE, pools=pools
                )
            )
        wait_for(
            lambda: settled(api, ns, 2 * COUNT),
            timeout=180,
            message="every TaskQueue's and pool's Deployment with its pod, controllers done",
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
        assert not noise, "the operator complained about pools going away:\n" + "\n".join(
            noise[:20]
        )
        assert refused == 0, f"{refused:.0f} Event posts refused by the API server"
    finally:
        assert op.stop() == 0, op.log()[-3000:]
