"""The operator's /healthz (the chart's liveness and readiness probe) tells the truth: 200
while the API server answers, 500 once it cannot be reached (so the kubelet restarts a cut-off
operator), 200 again when it is back. The API server is reached through the suite's Toxiproxy
(``apiserver_proxy``), which this test disables (every connection closed, new ones refused)
and enables again on the same port. The endpoint itself never goes away meanwhile: a refused
connection to it fails the test (``opsupport.healthz``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import OperatorProcess, healthz, install_crd, kubeconfig_via
from tests.support.toxiproxy import Proxy

pytestmark = pytest.mark.cluster


def test_healthz_fails_while_the_api_server_is_unreachable(
    local_cluster: Any, kubectl: Any, k8s_namespace: str, apiserver_proxy: Proxy, tmp_path: Path
) -> None:
    install_crd(kubectl)
    kubeconfig = kubeconfig_via(
        local_cluster.kubeconfig, apiserver_proxy.port, tmp_path / "relayed.kubeconfig"
    )
    op = OperatorProcess(str(kubeconfig), tmp_path / "operator.log", "-n", k8s_namespace)
    try:
        op.wait_ready()
        wait_for(lambda: healthz(op.liveness_port)[0] == 200, timeout=30, message="/healthz 200")
        apiserver_proxy.set_enabled(False)
        wait_for(
            lambda: healthz(op.liveness_port)[0] == 500,
            timeout=60,
            interval=1,
            message="/healthz 500",
        )
        assert op.alive()
        apiserver_proxy.set_enabled(True)
        wait_for(
            lambda: healthz(op.liveness_port)[0] == 200,
            timeout=60,
            interval=1,
            message="/healthz 200 again",
        )
    finally:
        code = op.stop()
    assert code == 0, op.log()[-3000:]
