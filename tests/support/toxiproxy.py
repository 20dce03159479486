"""The suite's one TCP proxy: a real Toxiproxy that a test puts in front of a server and cuts.

Why: what sits between two real processes must behave as a network does (late replies,
half-open connections, thin pipes, resets, a peer that is gone), and a proxy that really sits
on the TCP path shows what the client does, where a mocked client would only show what we
assumed. The fault tier (tests/faults) puts it between kubeq workers and Redis; the operator
tier (tests/operator) between the operator and the API server, to cut it.

``ToxiproxyServer`` runs ``toxiproxy-server`` (built by hack/toxiproxy/build.sh, cached
outside the checkout) on a free loopback port (the session's ``toxiproxy`` fixture, in
tests/conftest.py); ``Proxy`` is one listen->upstream pair and its toxics, driven through
Toxiproxy's HTTP API with the standard library. A toxic applies to every connection of its
proxy, existing and new: a scenario reaches one path of the client by choosing the moment
(for example while every slot of a worker is busy, only heartbeats talk).
``Proxy.set_enabled(False)`` is the cut: every connection closed, new ones refused.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubeq.testing.server import stop_process

from .redisserver import free_port

VERSION = "v2.12.0"
"""Keep in sync with hack/toxiproxy/build.sh and hack/toxiproxy/go.mod."""


def bin_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "kubeq" / f"toxiproxy-{VERSION}" / "bin"


def server_binary() -> Path:
    binary = bin_dir() / "toxiproxy-server"
    if not os.access(binary, os.X_OK):
        raise RuntimeError(
            f"toxiproxy-server {VERSION} is not built ({binary} is missing): "
            "run `make toxiproxy-bin` (hack/toxiproxy/build.sh)"
        )
    return binary


class ToxiproxyServer:
    """One toxiproxy-server process with its API on a free loopback port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self._log_path = workdir / "toxiproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self._log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [str(server_binary()), "-host", "127.0.0.1", "-port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.request("GET", "/version")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"toxiproxy-server did not start; see {self._log_path}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.api + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"toxiproxy {method} {path}: HTTP {exc.code}: {exc.read().decode(errors='replace')}"
            ) from None
        return json.loads(raw) if raw.strip() else None

    def proxy(self, name: str, upstream_port: int) -> Proxy:
        """A new proxy in front of 127.0.0.1:upstream_port, on a loopback port Toxiproxy
        binds itself (port 0: no window in which another process can take a port we chose);
        it keeps that port when it is disabled and enabled again. ``name`` (a test's name
        will do) is cut to what Toxiproxy takes in a URL path."""
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]
        created = self.request(
            "POST",
            "/proxies",
            {
                "name": name,
                "listen": "127.0.0.1:0",
                "upstream": f"127.0.0.1:{upstream_port}",
                "enabled": True,
            },
        )
        return Proxy(self, name, int(created["listen"].rsplit(":", 1)[1]))


class Proxy:
    """One proxy: clients connect to 127.0.0.1:``port`` instead of the upstream (``url``:
    that address as a Redis URL, for a proxy in front of Redis)."""

    def __init__(self, server: ToxiproxyServer, name: str, port: int) -> None:
        self.server = server
        self.name = name
        self.port = port
        self._n = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def add(
        self, kind: str, stream: str = "downstream", toxicity: float = 1.0, **attributes: int
    ) -> str:
        """Add a toxic (``latency``, ``timeout``, ``bandwidth``, ``reset_peer``, ...);
        ``stream`` is "upstream" (client -> Redis) or "downstream" (Redis -> client).
        Returns its name, for ``remove``."""
        self._n += 1
        name = f"{kind}_{stream}_{self._n}"
        self.server.request(
            "POST",
            f"/proxies/{self.name}/toxics",
            {
                "name": name,
                "type": kind,
                "stream": stream,
                "toxicity": toxicity,
                "attributes": attributes,
            },
        )
        return name

    def remove(self, toxic: str) -> None:
        self.server.request("DELETE", f"/proxies/{self.name}/toxics/{toxic}")

    def clear(self) -> None:
        for toxic in self.server.request("GET", f"/proxies/{self.name}/toxics"):
            self.remove(toxic["name"])

    @contextmanager
    def toxic(self, kind: str, stream: str = "downstream", **attributes: int) -> Iterator[str]:
        """``with proxy.toxic("latency", latency=5000): ...`` - removed on the way out."""
        name = self.add(kind, stream, **attributes)
        try:
            yield name
        finally:
            self.remove(name)

    def set_enabled(self, enabled: bool) -> None:
        """Disabled: every connection is closed and new ones are refused (the upstream is
        "down"); enabled again, it listens on the same port."""
        self.server.request("POST", f"/proxies/{self.name}", {"enabled": enabled})

    def delete(self) -> None:
        """Remove the proxy from the server (its port and connections close)."""
        self.server.request("DELETE", f"/proxies/{self.name}")
