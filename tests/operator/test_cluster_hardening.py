"""Against a real kube-apiserver: long TaskQueue names get workers,
a password in spec.redis.url is refused with a condition, and the operator's /healthz fails
while the API server cannot be reached (through the suite's Toxiproxy, which the test cuts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubeq_operator.names import deployment_name
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import (
    Api,
    OperatorProcess,
    healthz,
    install_crd,
    kubeconfig_via,
    taskqueue,
)
from tests.support.toxiproxy import Proxy

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize(
    "name",
    [
        "long-" + "n" * 70,  # over 63: not a label value
        ".".join(["x" * 61 + str(i) for i in range(4)])[:250].rstrip("."),  # >= 247 characters
    ],
    ids=["75-chars", "250-chars"],
)
def test_a_long_taskqueue_name_gets_workers(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str, name: str
) -> None:
    ns = k8s_namespace
    body = taskqueue(name, ns, redis_url, scaling={"minReplicas": 1})
    body["spec"]["queues"] = [f"q-{ns}-long-{len(name)}"]
    api.create_tq(body)
    dep = wait_for(
        lambda: api.deployment(ns, deployment_name(name)),
        timeout=30,
        message=lambda: f"the Deployment; operator log: {operator.log()[-2000:]}",
    )
    assert len(dep.metadata.name) <= 70
    wait_for(
        lambda: any(p.status.phase == "Running" for p in api.pods(ns, name)),
        timeout=60,
        message="a running worker pod",
    )
    c = wait_for(lambda: api.condition(ns, name, "Ready"), timeout=30, message="Ready")
    assert c["status"] == "True", c


def test_a_password_in_the_redis_url_is_refused(
    operator: OperatorProcess, api: Api, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    api.create_tq(taskqueue("pw", ns, "redis://:hunter2secret@127.0.0.1:6379/0"))

    def invalid() -> Any:
        c = api.condition(ns, "pw", "Ready")
        return c if c and c["reason"] == "InvalidSpec" else None

    c = wait_for(invalid, timeout=30, message="Ready=False/InvalidSpec")
    assert c["status"] == "False"
    assert "spec.redis.url" in c["message"] and "spec.redis.secretRef" in c["message"]
    assert "hunter2secret" not in c["message"]
    assert api.deployment(ns, deployment_name("pw")) is None  # nothing copied anywhere


def test_healthz_fails_while_the_api_server_cannot_be_reached(
    local_cluster: Any, kubectl: Any, apiserver_proxy: Proxy, tmp_path: Path
) -> None:
    install_crd(kubectl)
    kubeconfig = kubeconfig_via(
        local_cluster.kubeconfig, apiserver_proxy.port, tmp_path / "kubeconfig"
    )
    op = OperatorProcess(str(kubeconfig), tmp_path / "operator.log")
    try:
        op.wait_ready()
        status, body = healthz(op.liveness_port)
        assert status == 200, body
        assert "apiserver" in body  # the probe ran and reported the server's version

        apiserver_proxy.set_enabled(False)  # every connection closed, new ones refused
        # kopf keeps a success for 10 s; after that the probe asks the server again
        status, body = wait_for(
            lambda: (r := healthz(op.liveness_port))[0] != 200 and r,
            timeout=40,
            interval=1,
            message="/healthz to fail",
        )
        assert status == 500
        assert op.alive()

        apiserver_proxy.set_enabled(True)  # reachable again: healthy again
        wait_for(
            lambda: healthz(op.liveness_port)[0] == 200,
            timeout=40,
            interval=1,
            message="/healthz to recover",
        )
    finally:
        op.stop()
