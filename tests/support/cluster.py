"""A real Redis Cluster on loopback: 3 masters and 3 replicas of Debian's redis-server.

Each node is a ``redis-server --cluster-enabled yes`` process of ours, started by kubeq's
``RedisServer`` (tests/support/redisserver.py), on a free port, in its own directory (its
nodes.conf lives there), stopped at the end. ``redis-cli --cluster create
... --cluster-replicas 1 --cluster-yes`` joins them and spreads the 16384 slots over the
masters, as an operator would. ``move_slot()`` reshards one slot to another master with the
primitives ``redis-cli --cluster reshard`` uses (``CLUSTER SETSLOT ... IMPORTING/MIGRATING``,
``MIGRATE`` in batches, ``SETSLOT ... NODE``), so a test can do it while the slot is busy;
``kill_master()`` is a real kill -9, after which the replica takes over by itself.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from .redisserver import RedisServer, free_port


class ClusterTopology:
    def __init__(self, workdir: Path, masters: int = 3, replicas_per_master: int = 1) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed: run `make redis-server`")
        self.cli = cli
        self.workdir = workdir
        self.masters = masters
        self.replicas_per_master = replicas_per_master
        self.ports = [free_port() for _ in range(masters * (1 + replicas_per_master))]
        # the cluster bus needs a port of its own (port + 10000 by default, often past 65535
        # for a free ephemeral port)
        self.bus_ports = {p: free_port() for p in self.ports}
        self.servers = {p: RedisServer(workdir / str(p), p, args=self._args(p)) for p in self.ports}

    @property
    def url(self) -> str:
        """kubeq's URL form: every node as a seed (any one would do)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)

    @property
    def procs(self) -> dict[int, subprocess.Popen[bytes]]:
        """The nodes' processes by port (a killed one too, until it is revived)."""
        return {port: s.proc for port, s in self.servers.items() if s.proc is not None}

    def _args(self, port: int) -> list[str]:
        return [
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            *("--cluster-port", str(self.bus_ports[port])),
            # a dead master is failed over within about 2 s; the cluster keeps serving the
            # slots of healthy masters meanwhile
            *("--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no"),
        ]

    def start(self) -> None:
        for port in self.ports:
            self.servers[port].start()
        if self.masters == 1 and self.replicas_per_master == 0:
            # redis-cli --cluster create wants 3 masters; one node takes every slot itself
            self.node(self.ports[0]).execute_command("CLUSTER ADDSLOTSRANGE", 0, 16383)
            _wait(self._healthy, "the one-node cluster to serve its slots", 60)
            return
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                str(self.replicas_per_master),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        _wait(self._healthy, "the cluster to agree (cluster_state:ok on every node)", 60)

    def _healthy(self) -> bool:
        for port, proc in self.procs.items():
            if proc.poll() is not None:
                continue
            if self.node(port).execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                return False
        if len(self.master_ports()) != self.masters:
            return False
        # every replica has finished its first sync (a WAIT would not count it before)
        for port, proc in self.procs.items():
            if proc.poll() is None:
                info = self.node(port).info("replication")
                if info.get("role") == "slave" and info.get("master_link_status") != "up":
                    return False
        return True

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()

    def flush(self) -> None:
        """Empty every master (replicas follow), between tests."""
        for port in self.master_ports():
            self.node(port).flushall()

    # -- topology -----

    def _nodes(self) -> list[dict[str, str]]:
        """CLUSTER NODES as seen by a live node (redis-py parses it): port, flags, slots."""
        for port, proc in self.procs.items():
            if proc.poll() is None:
                try:
                    nodes = self.node(port).execute_command("CLUSTER NODES")
                except redis.RedisError:
                    continue
                return [
                    {"port": addr.rsplit(":", 1)[1], "flags": n["flags"], "slots": n["slots"]}
                    for addr, n in nodes.items()
                ]
        raise RuntimeError("no live cluster node")

    def master_ports(self) -> list[int]:
        return sorted(
            int(n["port"])
            for n in self._nodes()
            if "master" in n["flags"] and "fail" not in n["flags"] and n["slots"]
        )

    def node_id(self, port: int) -> str:
        return str(self.node(port).execute_command("CLUSTER MYID").decode())

    def owner(self, slot: int) -> int:
        """The port of the master serving ``slot``."""
        for start, end, port in self._slot_ranges():
            if start <= slot <= end:
                return port
        raise RuntimeError(f"slot {slot} is not served")

    def move_slot(self, slot: int, to_port: int, batch: int = 10, pause: float = 0.0) -> int:
        """Reshard one slot to the master on ``to_port`` while clients use it, the way
        ``redis-cli --cluster reshard`` does; ``pause`` seconds between MIGRATE batches widen
        the window in which the slot is split between two nodes. Returns the keys moved."""
        if self.owner(slot) == to_port:
            return 0
        migration = self.begin_migration(slot, to_port)
        moved = 0
        while n := migration.move(batch):
            moved += n
            if pause:
                time.sleep(pause)
        migration.finish()
        return moved

    def begin_migration(self, slot: int, to_port: int) -> Migration:
        """``CLUSTER SETSLOT ... IMPORTING`` on the target, ``MIGRATING`` on the source."""
        src_port = self.owner(slot)
        m = Migration(self, slot, src_port, to_port)
        m.dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", self.node_id(src_port))
        m.src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", self.node_id(to_port))
        return m

    def kill_master(self, port: int) -> None:
        """kill -9 a master; wait until its replica has taken its slots over."""
        self.procs[port].kill()
        self.procs[port].wait()
        _wait(lambda: port not in self.master_ports() and self._served(), "a failover", 30)

    def revive(self, port: int) -> None:
        """Start a killed node again: it reads its nodes.conf, rejoins and becomes a replica
        of the master that took its slots over (the topology is whole again)."""
        self.servers[port].start()

        def rejoined() -> bool:
            role = self.node(port).execute_command("ROLE")
            return bool(role[0] in (b"slave", "slave") and role[3] in (b"connected", "connected"))

        _wait(rejoined, f"node {port} to rejoin as a replica", 60)
        _wait(self._healthy, "the cluster to agree again", 60)

    def _served(self) -> bool:
        covered = 0
        for start, end, port in self._slot_ranges():
            if port in self.procs and self.procs[port].poll() is None:
                covered += end - start + 1
        return covered == 16384

    def _slot_ranges(self) -> list[tuple[int, int, int]]:
        """(first slot, last slot, master port) from CLUSTER SLOTS."""
        reply = self.node(self.master_ports()[0]).execute_command("CLUSTER SLOTS")
        return [(int(e[0]), int(e[1]), int(e[2][1])) for e in reply]


class Migration:
    """One slot half-way from one master to another (``ClusterTopology.begin_migration``)."""

    def __init__(self, t: ClusterTopology, slot: int, src_port: int, dst_port: int) -> None:
        self.t, self.slot, self.dst_port = t, slot, dst_port
        self.src, self.dst = t.node(src_port), t.node(dst_port)

    def move(self, count: int) -> int:
        """MIGRATE up to ``count`` more keys of the slot; returns how many moved."""
        keys = self.src.execute_command("CLUSTER GETKEYSINSLOT", self.slot, count)
        if keys:
            self.src.execute_command(
                "MIGRATE", "127.0.0.1", self.dst_port, "", 0, 10000, "KEYS", *keys
            )
        return len(keys)

    def finish(self) -> None:
        """Move what is left and give the slot to the target on every master."""
        while self.move(100):
            pass
        dst_id = self.t.node_id(self.dst_port)
        for port in self.t.master_ports():
            self.t.node(port).execute_command("CLUSTER SETSLOT", self.slot, "NODE", dst_id)


def _wait(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}" + (f": {last}" if last else ""))
