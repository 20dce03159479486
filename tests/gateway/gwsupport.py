"""Helpers of the gateway tests: the gateway as a child process (``GatewayProcess``: started,
then ``ready()``, so several start at once), HTTP calls to it (``call``; ``request`` also
gives the headers and can send from another loopback address), tokens (``token`` via
TokenRequest, ``expired_token`` signed with the local cluster's own service-account key but
already expired), the RBAC objects, the TCP connections a process holds to a port
(``connections_to``) and the API server's count of TokenReviews (``token_reviews``)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from tests.support.redisserver import free_port

KUBEQ = str(Path(sys.executable).with_name("kubeq"))
AUDIENCE = "kubeq-gateway-test"


class Reply(NamedTuple):
    status: int
    body: Any
    headers: dict[str, str]


class GatewayProcess:
    """``kubeq gateway`` with the cluster's admin kubeconfig, on a free port (``ready()``
    waits until it answers)."""

    def __init__(self, kubeconfig: str, log: Path, *extra: str) -> None:
        self.port = free_port()
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.log_path = log
        self.proc = subprocess.Popen(
            [
                *(KUBEQ, "gateway", "--host", "127.0.0.1", "--port", str(self.port)),
                *("--kubeconfig", kubeconfig, "--audience", AUDIENCE, *extra),
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> GatewayProcess:
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.call("GET", "/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            log = self.log_path.read_text()
            assert self.proc.poll() is None, log
            assert time.monotonic() < deadline, "the gateway did not start: " + log
            time.sleep(0.3)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        raw: bytes = b"",
        source: str = "127.0.0.1",
    ) -> Reply:
        """One HTTP request from loopback address ``source``."""
        data = raw or (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=120, source_address=(source, 0)
        )
        try:
            conn.request(method, path, body=data, headers=headers)
            reply = conn.getresponse()
            text = reply.read()
            headers = {k.lower(): v for k, v in reply.getheaders()}
            return Reply(reply.status, json.loads(text or b"null"), headers)
        finally:
            conn.close()

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None, raw: bytes = b""
    ) -> tuple[int, Any]:
        reply = self.request(method, path, body, token, raw)
        return reply.status, reply.body

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def connections_to(pid: int, port: int) -> int:
    """How many established TCP connections process ``pid`` holds to 127.0.0.1:``port``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if found:
            inodes.add(found.group(1))
    remote = f"0100007F:{port:04X}"
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == remote and fields[3] == "01" and fields[9] in inodes:
            count += 1
    return count


def token_reviews(kubectl: Any) -> int:
    """The TokenReviews the API server has answered since it started."""
    metrics = kubectl("get", "--raw", "/metrics", check=True).stdout
    total = 0
    for line in metrics.splitlines():
        if line.startswith("apiserver_request_total{") and 'resource="tokenreviews"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def token(kubectl: Any, namespace: str, account: str, audience: str = AUDIENCE) -> str:
    done = kubectl("create", "token", account, "-n", namespace, "--audience", audience, check=True)
    return str(done.stdout.strip())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def expired_token(pki: Path, namespace: str, account: str, uid: str) -> str:
    """A service-account token signed by the cluster's own key, whose lifetime has ended."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": f"system:serviceaccount:{namespace}:{account}",
        "aud": [AUDIENCE],
        "iat": now - 7200,
        "nbf": now - 7200,
        "exp": now - 3600,
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": account, "uid": uid}},
    }
    signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(pki / "sa.key")],
        input=signing.encode(),
        capture_output=True,
        check=True,
    ).stdout
    return f"{signing}.{_b64(signature)}"


def rbac(namespace: str, account: str, taskqueues: list[str]) -> str:
    """ServiceAccounts alice and bob; a Role on the jobs of ``taskqueues`` (create, get,
    delete, and update: signals) bound to ``account`` (YAML for kubectl apply)."""
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": n}}
        for n in ("alice", "bob")
    ]
    docs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "enqueue"},
            "rules": [
                {
                    "apiGroups": ["kubeq.dev"],
                    "resources": ["taskqueues/jobs"],
                    "resourceNames": taskqueues,
                    "verbs": ["create", "get", "delete", "update"],
                }
            ],
        }
    )
    docs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "enqueue"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "enqueue"},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
    )
    return "\n---\n".join(json.dumps(d) for d in docs)
