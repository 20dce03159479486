"""A real Redis Sentinel topology on loopback: one master, replicas, and sentinels.

Debian's redis-server runs each role (``--replicaof`` for a replica, ``--sentinel`` with a
config file for a sentinel), each started by kubeq's ``RedisServer`` (tests/support/
redisserver.py), which returns once that process is ready (a replica: its first sync done);
every process is ours, on free ports, in its own directory, and is stopped at the end.
``kill_master()`` is a real kill -9, after which the sentinels promote a replica as they would
in production.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis

from .redisserver import RedisServer, free_port

SERVICE = "kubeq-master"


class SentinelTopology:
    def __init__(self, workdir: Path, replicas: int = 2, sentinels: int = 3) -> None:
        self.workdir = workdir
        self.master_port = free_port()
        self.replica_ports = [free_port() for _ in range(replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.servers: dict[int, RedisServer] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    @property
    def procs(self) -> dict[int, subprocess.Popen[bytes]]:
        """The running processes by port."""
        return {port: s.proc for port, s in self.servers.items() if s.proc is not None}

    def _start(self, port: int, args: list[str], config: Path | None = None) -> None:
        """One process of the topology, started and ready (RedisServer.start)."""
        server = RedisServer(self.workdir / str(port), port, args=args, config=config)
        self.servers[port] = server
        server.start()

    def start(self) -> None:
        self._start(self.master_port, [])
        for port in self.replica_ports:  # each ready once its first sync is done
            self._start(port, ["--replicaof", "127.0.0.1", str(self.master_port)])
        quorum = len(self.sentinel_ports) // 2 + 1
        for port in self.sentinel_ports:
            conf = self.workdir / str(port) / "sentinel.conf"
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write_text(
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} {quorum}\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 2\n"
            )
            self._start(port, ["--sentinel"], config=conf)
        deadline = time.monotonic() + 30
        while self._replicas_known() < len(self.replica_ports):
            if time.monotonic() > deadline:
                raise RuntimeError(f"sentinels did not see the replicas; see {self.workdir}")
            time.sleep(0.1)
        # each replica's link is up (RedisServer.start); the master also counts it online, as
        # WAIT does (a WAIT right after start() once got 0 of 2 while the first sync ran)
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
