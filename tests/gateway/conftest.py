"""Fixtures of the gateway tests (marked ``cluster``): ``world``, one namespace on the local
control plane with the TaskQueue CRD, TaskQueues ``tq-a`` and ``tq-b`` on the session's Redis,
ServiceAccounts alice (bound to a Role on the jobs of tq-a) and bob (bound to nothing), and a
running ``kubeq gateway``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localcluster.pytest_plugin import fresh_namespace
from tests.gateway.gwsupport import GatewayProcess, rbac
from tests.operator.opsupport import install_crd, queue_of, taskqueue

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.cluster)


@dataclass
class World:
    namespace: str
    gateway: GatewayProcess
    redis_url: str
    pki: Path
    kubectl: Any
    kubeconfig: str

    def queue(self, taskqueue: str) -> str:
        return queue_of(taskqueue, self.namespace)

    def jobs(self, taskqueue: str) -> str:
        return f"/v1/namespaces/{self.namespace}/taskqueues/{taskqueue}/jobs"


@pytest.fixture(scope="module")
def world(
    local_cluster: Any,
    k8s_client: Any,
    kubectl: Any,
    kubeq_redis_server: Any,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    install_crd(kubectl)
    for namespace in fresh_namespace(k8s_client, request):
        url = kubeq_redis_server.url
        for name in ("tq-a", "tq-b"):
            doc = taskqueue(name, namespace, url)
            if name == "tq-a":  # declares its tasks: no other may be enqueued to it
                doc["metadata"]["annotations"] = {"kubeq.dev/tasks": "qtasks.add, qtasks.mark"}
            kubectl("apply", "-f", "-", input=_json(doc), check=True)
        kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            input=rbac(namespace, "alice", ["tq-a", "ghost"]),
            check=True,
        )
        log = tmp_path_factory.mktemp("gateway") / "gateway.log"
        gateway = GatewayProcess(local_cluster.kubeconfig, log, "--max-body", "4096")
        try:
            pki = Path(local_cluster.state_dir) / "pki"
            yield World(namespace, gateway, url, pki, kubectl, local_cluster.kubeconfig)
        finally:
            gateway.stop()


def _json(doc: Any) -> str:
    import json

    return json.dumps(doc)
