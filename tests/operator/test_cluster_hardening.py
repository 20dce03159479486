"""Issue 10, items 7 and 9, against a real kube-apiserver: long TaskQueue names get workers,
a password in spec.redis.url is refused with a condition, and the operator's /healthz fails
while the API server cannot be reached (through a TCP proxy the test cuts)."""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeq_operator.names import deployment_name
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, install_crd, taskqueue

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


class Proxy:
    """A TCP proxy to the API server that the test can cut (connections reset, port closed)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        for s in self.conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.conns.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def test_healthz_fails_while_the_api_server_cannot_be_reached(
    local_cluster: Any, kubectl: Any, tmp_path: Path
) -> None:
    install_crd(kubectl)
    config = yaml.safe_load(Path(local_cluster.kubeconfig).read_text())
    server = config["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    proxy = Proxy((host, int(port)))
    config["clusters"][0]["cluster"]["server"] = f"https://{host}:{proxy.port}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    op = OperatorProcess(str(kubeconfig), tmp_path / "operator.log")
    try:
        op.wait_ready()
        status, body = healthz(op.liveness_port)
        assert status == 200, body
        assert "apiserver" in body  # the probe ran and reported the server's version

        proxy.cut()
        # kopf keeps a success for 10 s; after that the probe asks the server again
        status, body = wait_for(
            lambda: (r := healthz(op.liveness_port))[0] != 200 and r,
            timeout=40,
            interval=1,
            message="/healthz to fail",
        )
        assert status == 500
        assert op.alive()

        proxy.open = True  # reachable again: healthy again
        wait_for(
            lambda: healthz(op.liveness_port)[0] == 200,
            timeout=40,
            interval=1,
            message="/healthz to recover",
        )
    finally:
        op.stop()
        proxy.close()
