"""The Redis side of bench/swarm.py: the target (one redis-server, or a Redis Cluster of a
few masters on loopback, each allowed ``MAXCLIENTS`` clients), the queue names spread over
its masters, and Redis's own figures over a measuring window (commands in all and by
command, CPU, memory, clients; per master and summed)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import redis
from redis.crc import key_slot

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.cluster import ClusterTopology
from tests.support.redisserver import RedisServer

MAXCLIENTS = 19_000
"""Redis's client limit here: this machine allows 20,000 open files per process (a hard
limit no process here may raise), and Redis keeps 32 for itself."""


class Target:
    """A running Redis to swarm: its URL and its master nodes."""

    def __init__(self, name: str, url: str, masters: list[redis.Redis], stop: Any) -> None:
        self.name, self.url, self.masters, self.stop = name, url, masters, stop

    def sample(self) -> list[dict[str, Any]]:
        """Per master: commands run (in all and by command), CPU seconds, memory and clients."""
        out = []
        for m in self.masters:
            stats = m.info("commandstats")
            cpu = m.info("cpu")
            by = {
                k.removeprefix("cmdstat_"): v["calls"]
                for k, v in stats.items()
                if not k.startswith("cmdstat_info")
            }
            out.append(
                {
                    "calls": sum(by.values()),
                    "by_command": by,
                    "cpu": cpu["used_cpu_user"] + cpu["used_cpu_sys"],
                    "memory": m.info("memory")["used_memory"],
                    "clients": m.info("clients")["connected_clients"],
                }
            )
        return out

    def memory(self) -> float:
        return sum(n["memory"] for n in self.sample())

    def maxclients(self) -> int:
        """The client limit Redis applies (it lowers a requested one that its open-file
        limit cannot hold, and says so only in its log)."""
        return min(int(m.config_get("maxclients")["maxclients"]) for m in self.masters)

    def flush(self) -> None:
        for m in self.masters:
            m.flushall()


def start_redis(workdir: Path) -> Target:
    server = RedisServer(workdir / "redis", args=["--maxclients", str(MAXCLIENTS)])
    server.start()
    return Target("redis", server.url, [redis.Redis.from_url(server.url)], server.stop)


def start_cluster(workdir: Path, masters: int = 3) -> Target:
    topo = ClusterTopology(workdir / "cluster", masters=masters, replicas_per_master=0)
    topo.start()
    nodes = [topo.node(p) for p in topo.master_ports()]
    for m in nodes:
        m.config_set("maxclients", MAXCLIENTS)
    return Target("cluster", topo.url, nodes, topo.stop)


def queue_names(target: Target, per_master: int) -> list[str]:
    """``per_master`` queues for each master: on the cluster, chosen by their hash slots so
    that each master holds as many (a queue lives on one master); on one server, 3."""
    if target.name != "cluster":
        return [f"swarm{i}" for i in range(3)]
    # CLUSTER SLOTS: [first, last, [host, port, id], replicas...] per range
    ranges = target.masters[0].execute_command("CLUSTER SLOTS")
    owners: dict[int, list[str]] = {}
    i = 0
    while sum(len(v) for v in owners.values()) < per_master * len(target.masters):
        name = f"swarm{i}"
        slot = key_slot(name.encode())
        port = next(int(r[2][1]) for r in ranges if int(r[0]) <= slot <= int(r[1]))
        if len(owners.setdefault(port, [])) < per_master:
            owners[port].append(name)
        i += 1
    # interleaved, so that worker i % len(queues) spreads the fleet evenly over the masters
    return [q for group in zip(*owners.values(), strict=True) for q in group]


def window(target: Target, seconds: float, tick: Any) -> dict[str, Any]:
    """Redis's figures over ``seconds``, calling ``tick`` every 10 ms meanwhile: summed over
    the masters, and per master (``nodes``)."""
    before, t0 = target.sample(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        tick()
        time.sleep(0.01)
    after, took = target.sample(), time.monotonic() - t0
    nodes = [
        {
            "commands_per_s": round((y["calls"] - x["calls"]) / took, 1),
            "cpu_percent": round(100 * (y["cpu"] - x["cpu"]) / took, 1),
            "memory": y["memory"],
            "clients": y["clients"],
        }
        for x, y in zip(before, after, strict=True)
    ]
    total = {k: round(sum(nd[k] for nd in nodes), 1) for k in nodes[0]}
    by: dict[str, float] = {}
    for x, y in zip(before, after, strict=True):
        for cmd, calls in y["by_command"].items():
            by[cmd] = by.get(cmd, 0.0) + (calls - x["by_command"].get(cmd, 0)) / took
    by_command = {k: round(v, 1) for k, v in sorted(by.items(), key=lambda kv: -kv[1]) if v}
    return total | {"nodes": nodes, "by_command": by_command}
