"""A real redis-server on a free loopback port, started and stopped by tests.

Tests never talk to a Redis they did not start: each session gets its own server with no
persistence and its own directory, and a test can stop and restart it on the same port to
prove that workers survive an outage. kubeq's own tests use it, and so does the pytest
plugin's ``kubeq_redis`` fixture for users' tests (it needs ``redis-server`` on the PATH:
``apt-get install redis-server``, ``brew install redis``).

``start()`` returns once the server is ready, not at its first sign of life: it answers PING
(not LOADING) and, started as a replica (``args=["--replicaof", host, port]``), has finished
its first sync with its master. kubeq's test harnesses (Sentinel, Redis Cluster, TLS) start
every redis-server through this class.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A loopback port nobody listens on, below the ephemeral range and never the same twice
    in one process. A port from the ephemeral range (what binding port 0 gives) can be taken,
    between this call and the server's bind, as the local port of any outgoing connection."""
    low, _ = _ephemeral_range()
    candidates = list(range(10000, low)) if low > 11000 else list(range(low // 2, low))
    for port in random.sample(candidates, len(candidates)):
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 10) -> None:
    """SIGTERM ``proc`` if it still runs, SIGKILL it after ``grace`` seconds, and reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class RedisServer:
    """One redis-server process; ``url`` stays the same across stop/start.

    ``args``: more redis-server options, after kubeq's (``--replicaof HOST PORT``,
    ``--cluster-enabled yes``, ``--tls-port ...``); ``config``: a config file it reads first
    (a sentinel's, which it rewrites; ``args=["--sentinel"]``); ``password``: its
    ``requirepass``, also what the readiness check authenticates with.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        args: Sequence[str] = (),
        config: Path | None = None,
        password: str | None = None,
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not on the PATH: install it (apt-get install redis-server, "
                "brew install redis; in kubeq's checkout `make redis-server`)"
            )
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.args = list(args)
        self.config = config
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                self.binary,
                *([] if self.config is None else [str(self.config)]),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "no",
                *([] if self.password is None else ["--requirepass", self.password]),
                *self.args,
            ],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server on port {self.port} did not become ready; "
                    f"see {self.workdir / 'redis.log'}"
                )
            time.sleep(0.05)

    def ready(self) -> bool:
        """It answers PING (so it is not loading) and, as a replica, its first sync is done."""
        client = redis.Redis(
            port=self.port, password=self.password, socket_connect_timeout=0.5, socket_timeout=5
        )
        try:
            client.ping()
            # empty on a sentinel; Any: redis-py before 8.0 types a reply "T | Awaitable[T]"
            replication: Any = client.info("replication")
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        finally:
            client.close()
        role, link = replication.get("role"), replication.get("master_link_status")
        return bool(role != "slave" or link == "up")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
