"""Fixtures of the gateway tests (marked ``cluster``): ``world``, built once for the whole
package: one namespace on the local control plane with the TaskQueue CRD, TaskQueues
``tq-a`` (declaring its tasks in ``spec.tasks``) and ``tq-b`` on the session's Redis,
ServiceAccounts alice (bound to a Role on the jobs of tq-a) and bob (bound to nothing), and
the three gateways the tests need, started side by side: ``gateway`` (a small body bound, no
practical rate bound, reviews and TaskQueues cached for 1 s, and its API server behind
``apiserver``, a Toxiproxy proxy a test may cut), ``strict`` (2 requests per caller, then
0.01/s) and ``unauth`` (3 refused tokens per source address, 5 in all; reviews cached for
an hour)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from localcluster.pytest_plugin import fresh_namespace
from tests.gateway.gwsupport import GatewayProcess, rbac, token
from tests.operator.opsupport import install_crd, kubeconfig_via, queue_of, taskqueue
from tests.support.toxiproxy import Proxy, ToxiproxyServer

HERE = Path(__file__).resolve().parent
TQ_A_TASKS = ["qtasks.add", "qtasks.mark"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.cluster)


CACHE_SECONDS = 1
"""How long ``gateway`` caches a token's reviews and a TaskQueue."""


@dataclass
class World:
    namespace: str
    gateway: GatewayProcess
    strict: GatewayProcess
    unauth: GatewayProcess
    apiserver: Proxy
    redis_url: str
    pki: Path
    kubectl: Any
    kubeconfig: str
    _tokens: dict[str, str] = field(default_factory=dict)

    def queue(self, taskqueue: str) -> str:
        return queue_of(taskqueue, self.namespace)

    def jobs(self, taskqueue: str) -> str:
        return f"/v1/namespaces/{self.namespace}/taskqueues/{taskqueue}/jobs"

    def token(self, account: str) -> str:
        """A token of ``account`` with the gateways' audience (one per package run)."""
        if account not in self._tokens:
            self._tokens[account] = token(self.kubectl, self.namespace, account)
        return self._tokens[account]

    def apply(self, doc: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(doc), check=True)

    def taskqueue(self, name: str, redis_url: str, **spec: Any) -> dict[str, Any]:
        return taskqueue(name, self.namespace, redis_url, **spec)


@pytest.fixture(scope="package")
def world(
    local_cluster: Any,
    k8s_client: Any,
    kubectl: Any,
    kubeq_redis_server: Any,
    toxiproxy: ToxiproxyServer,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    logs = tmp_path_factory.mktemp("gateway")
    kubeconfig = local_cluster.kubeconfig
    apiserver = toxiproxy.proxy("gateway-apiserver", local_cluster.ports["apiserver"])
    proxied = kubeconfig_via(kubeconfig, apiserver.port, logs / "proxied.kubeconfig")
    gateways = {  # started now, waited for below: their start-ups overlap with the setup
        "gateway": (
            *("--kubeconfig", str(proxied), "--max-body", "4096"),
            *("--cache-seconds", str(CACHE_SECONDS)),
            *("--rate", "100000", "--burst", "100000"),
        ),
        "strict": ("--rate", "0.01", "--burst", "2"),
        "unauth": (  # reviews cached for the whole run: the test counts the reviews made
            *("--cache-seconds", "3600", "--unauth-rate", "0.01", "--unauth-burst", "3"),
            *("--unauth-total-rate", "0.01", "--unauth-total-burst", "5"),
        ),
    }
    started = {
        name: GatewayProcess(kubeconfig, logs / f"{name}.log", *args)
        for name, args in gateways.items()
    }
    try:
        install_crd(kubectl)
        for namespace in fresh_namespace(k8s_client, request):
            url = kubeq_redis_server.url
            for name in ("tq-a", "tq-b"):
                doc = taskqueue(name, namespace, url)
                if name == "tq-a":  # declares its tasks: no other may be enqueued to it
                    doc["spec"]["tasks"] = TQ_A_TASKS
                kubectl("apply", "-f", "-", input=json.dumps(doc), check=True)
            rules = rbac(namespace, "alice", ["tq-a", "ghost", "tq-gone", "tq-moved", "tq-down"])
            kubectl("apply", "-n", namespace, "-f", "-", input=rules, check=True)
            for gateway in started.values():
                gateway.ready()
            yield World(
                namespace,
                gateway=started["gateway"],
                strict=started["strict"],
                unauth=started["unauth"],
                apiserver=apiserver,
                redis_url=url,
                pki=Path(local_cluster.state_dir) / "pki",
                kubectl=kubectl,
                kubeconfig=kubeconfig,
            )
    finally:
        for gateway in started.values():
            gateway.stop()
        apiserver.delete()
