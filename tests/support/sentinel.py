"""A real Redis Sentinel topology on loopback: one master, replicas, and sentinels.

Debian's redis-server runs each role (``--replicaof`` for a replica, ``--sentinel`` with a
config file for a sentinel); every process is ours, on free ports, in its own directory, and is
stopped at the end. ``kill_master()`` is a real kill -9, after which the sentinels promote a
replica as they would in production.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from .redisserver import free_port

SERVICE = "kubeq-master"


class SentinelTopology:
    def __init__(self, workdir: Path, replicas: int = 2, sentinels: int = 3) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make redis-server`")
        self.binary = binary
        self.workdir = workdir
        self.master_port = free_port()
        self.replica_ports = [free_port() for _ in range(replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _spawn(self, port: int, args: list[str]) -> None:
        d = self.workdir / str(port)
        d.mkdir(parents=True, exist_ok=True)
        log = open(d / "log", "ab")  # noqa: SIM115 - owned by the process
        self.procs[port] = subprocess.Popen(
            [self.binary, *args], cwd=d, stdout=log, stderr=subprocess.STDOUT
        )
        _wait_ping(port)

    def _server_args(self, port: int) -> list[str]:
        return [
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--dir",
            str(self.workdir / str(port)),
        ]

    def start(self) -> None:
        self._spawn(self.master_port, self._server_args(self.master_port))
        for port in self.replica_ports:
            self._spawn(
                port, [*self._server_args(port), "--replicaof", "127.0.0.1", str(self.master_port)]
            )
        quorum = len(self.sentinel_ports) // 2 + 1
        for port in self.sentinel_ports:
            d = self.workdir / str(port)
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {d}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} {quorum}\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 2\n"
            )
            self._spawn(port, [str(conf), "--sentinel"])
        deadline = time.monotonic() + 30
        while self._replicas_known() < len(self.replica_ports):
            if time.monotonic() > deadline:
                raise RuntimeError(f"sentinels did not see the replicas; see {self.workdir}")
            time.sleep(0.1)
        # seen by the sentinels is not yet replicating: a WAIT for the replicas right after
        # start() got 0 of 2 on a loaded machine while their first sync was under way
        while self._replicas_online() < len(self.replica_ports):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replicas did not finish syncing; see {self.workdir}")
            time.sleep(0.1)

    def _replicas_online(self) -> int:
        client = redis.Redis(port=self.master_port)
        try:
            info = client.info("replication")
        finally:
            client.close()
        links = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return sum(1 for link in links if link.get("state") == "online")

    def _replicas_known(self) -> int:
        client = redis.Redis(port=self.sentinel_ports[0])
        try:
            return len(client.sentinel_slaves(SERVICE))
        finally:
            client.close()

    def master(self) -> tuple[str, int]:
        client = redis.Redis(port=self.sentinel_ports[0])
        try:
            host, port = client.sentinel_get_master_addr_by_name(SERVICE)
            return str(host), int(port)
        finally:
            client.close()

    def kill_master(self) -> int:
        """kill -9 the current master; returns its port."""
        _, port = self.master()
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait()
        return port

    def wait_failover(self, old_port: int, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                _, port = self.master()
                if port != old_port:
                    return port
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"no failover within {timeout} s; see {self.workdir}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _wait_ping(port: int) -> None:
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no redis process answered on port {port}") from None
                time.sleep(0.05)
    finally:
        client.close()
