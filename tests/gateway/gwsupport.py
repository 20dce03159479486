"""Helpers of the gateway tests: the gateway as a child process (``GatewayProcess``), HTTP
calls to it (``call``), tokens (``token`` via TokenRequest, ``expired_token`` signed with the
local cluster's own service-account key but already expired) and the RBAC objects."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.redisserver import free_port

KUBEQ = str(Path(sys.executable).with_name("kubeq"))
AUDIENCE = "kubeq-gateway-test"


class GatewayProcess:
    """``kubeq gateway`` with the cluster's admin kubeconfig, on a free port."""

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
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.call("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert self.proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the gateway did not start: " + log.read_text()
            time.sleep(0.3)

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None, raw: bytes = b""
    ) -> tuple[int, Any]:
        data = raw or (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=120) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


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
    """ServiceAccounts alice and bob; a Role on the jobs of ``taskqueues`` bound to
    ``account`` (YAML for kubectl apply)."""
    docs = [
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
                    "verbs": ["create", "get", "delete"],
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
