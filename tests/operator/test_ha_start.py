"""Two peered operator replicas started at the same instant, against the real API server,
with a TaskQueue that already has a backlog: only one of them may ever work. Neither has seen
the other's peering record at its first look at the peering object, so without a start-up
hold both would resume and both would run TaskQueue passes (two scale decisions, two Events)
until the peering settles.

The TaskQueue's pods select a node that does not exist, so the jobs stay in the backlog and
the replicas follow it alone (jobsPerReplica 10).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import kubeq
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import OperatorProcess, install_crd, queue_of, taskqueue
from tests.operator.test_ha import (
    LIFETIME,
    PEERING,
    PEERING_CRD,
    peering_lines,
    peering_records,
    replicas,
)

pytestmark = pytest.mark.cluster

ACTIVE = "first TaskQueue pass: this replica is active"
ROUNDS = 3
"""Simultaneous starts to try: the race is between two processes' start-up, so one start can
miss it by luck."""


def test_replicas_started_together_never_work_at_once(
    local_cluster: Any, kubectl: Any, k8s_namespace: str, api: Any, redis_url: str, tmp_path: Path
) -> None:
    ns = k8s_namespace
    install_crd(kubectl)
    kubectl("apply", "-f", str(PEERING_CRD), check=True)
    kubectl("wait", "--for", "condition=established", "crd/kopfpeerings.kopf.dev", check=True)
    peering = f"apiVersion: kopf.dev/v1\nkind: KopfPeering\nmetadata: {{name: {PEERING}}}\n"
    kubectl("apply", "-n", ns, "-f", "-", input=peering, check=True)
    api.create_tq(
        taskqueue(
            "tq",
            ns,
            redis_url,
            scaling={"maxReplicas": 5, "jobsPerReplica": 10, "pollSeconds": 0.5},
            worker={"podTemplate": {"spec": {"nodeSelector": {"kubeq.dev/none": "x"}}}},
        )
    )
    app = kubeq.App(redis_url)
    app.enqueue_many([kubeq.Call("e2e_tasks.noop", (), queue=queue_of("tq", ns))] * 25)
    app.close()
    args = ("-n", ns, "--peering", PEERING, "--peering-lifetime", str(LIFETIME))
    ops: list[OperatorProcess] = []
    try:
        for n in range(ROUNDS):
            pair = [
                OperatorProcess(local_cluster.kubeconfig, tmp_path / f"{n}{x}.log", *args)
                for x in "ab"
            ]
            ops += pair
            for op in pair:
                op.wait_ready()
            wait_for(
                lambda pair=pair: any(ACTIVE in op.log() for op in pair),
                timeout=90,
                message="one replica active",
            )
            wait_for(lambda: replicas(api, ns) == 3, timeout=90, message="3 replicas")
            time.sleep(5)  # the peering has settled (both records seen by both)
            logs = [op.log() for op in pair]
            active = [i for i, log in enumerate(logs) if ACTIVE in log]
            assert len(active) == 1, (
                f"round {n}: both replicas worked at once\nA:\n{peering_lines(logs[0])}\n"
                f"B:\n{peering_lines(logs[1])}\nactive: {active}\n"
                f"records: {peering_records(api, ns)}"
            )
            for op in pair:  # the next round starts from no operator, as after an outage
                op.stop()
            wait_for(lambda: not peering_records(api, ns), timeout=30, message="records gone")
    finally:
        kubectl("delete", "taskqueues", "--all", "-n", ns, "--wait=true", "--timeout=60s")
        for op in ops:
            op.stop()
