"""A tiny Kubernetes REST client on the standard library (http.client + ssl).

The node agent and the cluster manager only need a handful of calls (get, create, patch,
delete, list-then-watch) against a cluster they configured themselves. Keeping them on the
standard library makes both independent of the kubernetes Python client's generated models
and its version; tests use the real kubernetes client.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, body: str, method: str, path: str) -> None:
        self.status = status
        self.body = body
        try:
            self.reason = str(json.loads(body).get("reason", ""))
        except (ValueError, AttributeError):
            self.reason = ""
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")


@dataclass(frozen=True)
class KubeConfig:
    """The parts of a kubeconfig this client understands (certificate auth only)."""

    server: str
    ca_file: str
    cert_file: str
    key_file: str

    @classmethod
    def load(cls, path: Path) -> KubeConfig:
        """Load a kubeconfig written by localcluster (JSON, file references)."""
        data = json.loads(path.read_text())
        ctx_name = data["current-context"]
        ctx = next(c["context"] for c in data["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in data["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in data["users"] if u["name"] == ctx["user"])
        return cls(
            server=cluster["server"],
            ca_file=cluster["certificate-authority"],
            cert_file=user["client-certificate"],
            key_file=user["client-key"],
        )


def write_kubeconfig(
    path: Path, *, server: str, ca_file: Path, cert_file: Path, key_file: Path, user: str
) -> None:
    """Write a kubeconfig (JSON is valid YAML, so kubectl and client libraries read it)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubeq-local",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(cert_file), "client-key": str(key_file)},
            }
        ],
        "contexts": [{"name": "kubeq-local", "context": {"cluster": "kubeq-local", "user": user}}],
        "current-context": "kubeq-local",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    path.chmod(0o600)


class Client:
    """One API server, certificate-authenticated. Thread-safe: a connection per request."""

    def __init__(self, config: KubeConfig, timeout: float = 30.0) -> None:
        url = urllib.parse.urlsplit(config.server)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 443
        self.timeout = timeout
        self._ctx = ssl.create_default_context(cafile=config.ca_file)
        self._ctx.load_cert_chain(config.cert_file, config.key_file)

    @classmethod
    def from_kubeconfig(cls, path: Path, timeout: float = 30.0) -> Client:
        return cls(KubeConfig.load(path), timeout)

    def _conn(self, timeout: float | None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.host, self.port, context=self._ctx, timeout=timeout or self.timeout
        )

    @staticmethod
    def _url(path: str, params: dict[str, Any] | None) -> str:
        if not params:
            return path
        clean = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
        return path + "?" + urllib.parse.urlencode(clean)

    def request_raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> tuple[int, str]:
        """Send one request; return (status, body text) whatever the status."""
        conn = self._conn(timeout)
        try:
            headers = {"Accept": "application/json", "User-Agent": "kubeq-localcluster"}
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                headers["Content-Type"] = content_type
            conn.request(method, self._url(path, params), body=payload, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> JSON:
        """Send one request and decode the JSON answer; raise ApiError on non-2xx."""
        status, text = self.request_raw(
            method, path, body, params=params, content_type=content_type, timeout=timeout
        )
        if not 200 <= status < 300:
            raise ApiError(status, text, method, path)
        return json.loads(text) if text else {}

    def get(self, path: str, params: dict[str, Any] | None = None) -> JSON:
        return self.request("GET", path, params=params)

    def create(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body)

    def patch(self, path: str, body: JSON, content_type: str = STRATEGIC_MERGE_PATCH) -> JSON:
        return self.request("PATCH", path, body, content_type=content_type)

    def delete(self, path: str, body: JSON | None = None) -> JSON:
        return self.request("DELETE", path, body)

    def watch(self, path: str, params: dict[str, Any], timeout_seconds: int = 60) -> Iterator[JSON]:
        """Yield watch events ({"type", "object"}) until the server closes the stream."""
        query = {**params, "watch": "true", "timeoutSeconds": timeout_seconds}
        conn = self._conn(timeout_seconds + 15)
        try:
            conn.request("GET", self._url(path, query), headers={"Accept": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise ApiError(resp.status, resp.read().decode(), "WATCH", path)
            while True:
                try:
                    line = resp.readline()
                except TimeoutError:
                    return
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()
