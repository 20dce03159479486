"""Sharding the operator: ``--selector`` (a label selector on the TaskQueue watch) and
``--namespace`` split TaskQueues between operators, each serving only its own, against the
real API server; a selector the API would refuse is a clear error at start; and the peering
priority that makes the oldest replica the active one."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kubeq_operator.main import start_priority
from kubeq_operator.names import deployment_name
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import ROOT, OperatorProcess, install_crd, taskqueue

NOWHERE = {"podTemplate": {"spec": {"nodeSelector": {"kubeq.dev/none": "x"}}}}


def test_older_replicas_have_the_higher_priority_and_none_are_equal() -> None:
    t = 1_800_000_000.0
    assert start_priority(t, 99_999) > start_priority(t + 1, 0)
    assert start_priority(t, 99_999) > start_priority(t + 0.7, 0)  # within one second too
    assert start_priority(t, 99_999) > start_priority(t + 0.002, 0)
    assert start_priority(t, 1) != start_priority(t, 2)
    assert start_priority(t, 99_999) < 2**63  # an int64 in the peering object


def test_a_malformed_selector_is_refused_at_start() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "kubeq_operator", "--selector", "shard in a", "--metrics-port", "0"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert res.returncode == 2
    assert "--selector 'shard in a'" in res.stderr and "key in (a,b)" in res.stderr


def served(op: OperatorProcess, ns: str) -> set[str]:
    """The TaskQueues of ``ns`` whose loop runs in ``op`` (from its /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=20) as r:
        text = r.read().decode()
    pattern = rf'kubeq_workers_current\{{[^}}]*namespace="{ns}"[^}}]*taskqueue="([^"]+)"'
    return set(re.findall(pattern, text))


@pytest.mark.cluster
def test_each_shard_serves_only_its_taskqueues(
    local_cluster: Any, kubectl: Any, k8s_namespace: str, api: Any, redis_url: str, tmp_path: Path
) -> None:
    ns = k8s_namespace
    install_crd(kubectl)
    ops = {
        shard: OperatorProcess(
            local_cluster.kubeconfig, tmp_path / f"{shard}.log", "-n", ns, "--selector", sel
        )
        for shard, sel in (("a", "shard=a"), ("rest", "shard!=a"))
    }
    try:
        for op in ops.values():
            op.wait_ready()
        for name, shard in (("one", "a"), ("two", "b"), ("three", "a")):
            body = taskqueue(name, ns, redis_url, worker=NOWHERE)
            body["metadata"]["labels"] = {"shard": shard}
            api.create_tq(body)
        for name in ("one", "two", "three"):
            wait_for(
                lambda n=name: api.deployment(ns, deployment_name(n)) is not None,
                timeout=120,
                message=f"the Deployment of {name}",
            )
        time.sleep(3)  # a pass or more of each loop
        assert served(ops["a"], ns) == {"one", "three"}
        assert served(ops["rest"], ns) == {"two"}
    finally:
        kubectl("delete", "taskqueues", "--all", "-n", ns, "--wait=true", "--timeout=60s")
        for op in ops.values():
            op.stop()
