"""The operator's /healthz (the chart's liveness and readiness probe) tells the truth: 200
while the API server answers, 500 once it cannot be reached (so the kubelet restarts a cut-off
operator), 200 again when it is back. The API server is reached through a TCP relay this test
opens and closes."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import OperatorProcess, install_crd

pytestmark = pytest.mark.cluster


class Relay:
    """127.0.0.1:<port> -> the API server, until ``cut()`` drops every connection."""

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", port))
        self.port = int(self.server.getsockname()[1])
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.server.accept()
            except OSError:
                return
            up = socket.create_connection(self.target)
            with self.lock:
                self.conns += [down, up]
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        self.server.close()
        with self.lock:
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()


def healthz(op: OperatorProcess) -> int:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{op.liveness_port}/healthz", timeout=20
        ) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


def test_healthz_fails_while_the_api_server_is_unreachable(
    local_cluster: Any, kubectl: Any, k8s_namespace: str, tmp_path: Path
) -> None:
    install_crd(kubectl)
    relay = Relay(local_cluster.ports["apiserver"])
    config = json.loads(Path(local_cluster.kubeconfig).read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{relay.port}"
    kubeconfig = tmp_path / "relayed.kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    op = OperatorProcess(str(kubeconfig), tmp_path / "operator.log", "-n", k8s_namespace)
    try:
        op.wait_ready()
        wait_for(lambda: healthz(op) == 200, timeout=30, message="/healthz 200")
        relay.cut()
        wait_for(lambda: healthz(op) == 500, timeout=60, interval=1, message="/healthz 500")
        assert op.alive()
        relay = Relay(local_cluster.ports["apiserver"], port=relay.port)
        wait_for(lambda: healthz(op) == 200, timeout=60, interval=1, message="/healthz 200 again")
    finally:
        relay.cut()
        code = op.stop()
    assert code == 0, op.log()[-3000:]
