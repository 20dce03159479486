"""The swarm: N real kubeq workers against one redis-server and a Redis Cluster of 3 masters.

    .venv/bin/python bench/swarm.py [--sizes 10,100,1000] [--targets redis,cluster]
        [--idle 30] [--busy 30] [--rate 10] [--per-process 250]

For each target and each N, ``swarm_fleet.py`` processes (at most ``--per-process`` workers
each, all on one event loop) run N of kubeq's own workers (``kubeq.worker``: the real fetch,
ack, heartbeat, idle beat and wake scripts, each worker with its own id, leases and client),
spread over 3 queues (on the cluster, one per master). Then, from the Redis side:

- idle: ``--idle`` seconds with nothing enqueued;
- busy: ``--busy`` seconds while this process enqueues ``--rate`` jobs a second (each runs
  2.5 s, so busy workers renew their leases);

each window's Redis commands per second (``INFO commandstats`` deltas, so the commands run
inside scripts count), Redis CPU (``INFO cpu`` deltas, user + sys, as a share of one core),
Redis memory (``used_memory`` at the window's end, and its growth over the empty server), the
connections; for the busy window the enqueue -> start p50/p99 of every job and the slowest
heartbeat (lease renewal round trip, and the longest gap between two renewals of a worker
holding a job; lease 30 s). On the cluster the figures are summed over the masters.

What it leaves out: the workers' own CPU and memory (thousands share two cores here; a pod
has its own), so only Redis's side is measured; see bench/README.md, "The swarm".

Writes bench/results/swarm-<date>.json and renders its table into bench/README.md (the
``swarm`` block, bench/fleet_report.py); ``--render-only`` redoes just that.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from redis.crc import key_slot

import kubeq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import report  # noqa: E402
import swarm_fleet  # noqa: E402

from tests.support.cluster import ClusterTopology  # noqa: E402
from tests.support.redisserver import RedisServer  # noqa: E402

MAXCLIENTS = 19_000
"""Redis's client limit here: this machine allows 20,000 open files per process (a hard
limit no process here may raise), and Redis keeps 32 for itself."""
SHARE_ABOVE = {"redis": 5_000, "cluster": 1_000}
"""Above this many workers, each ``--share`` workers share one client (one pool; each still
holds its own BLPOP connection): on one redis-server two connections per worker would pass
MAXCLIENTS; a Redis Cluster client of redis-py takes about 2 MB of the harness's memory
(10,000 of them would not fit in this machine's 24 GB)."""


STOP_SECONDS = 180.0
"""How long the processes have, all together, to stop their workers and report."""


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
    masters = [topo.node(p) for p in topo.master_ports()]
    for m in masters:
        m.config_set("maxclients", MAXCLIENTS)
    return Target("cluster", topo.url, masters, topo.stop)


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


def live(client: kubeq.App, queues: list[str]) -> int:
    return sum(client.queue(q).stats().live_workers for q in queues)


def run_size(target: Target, n: int, a: argparse.Namespace) -> dict[str, Any]:
    """One N on one target: start the fleet, wait until every worker is live, measure idle
    then busy, stop it."""
    target.flush()
    queues = queue_names(target, a.queues_per_master)
    empty = target.memory()
    procs = []
    logs = []
    shared = n > SHARE_ABOVE[target.name]
    for first in range(0, n, a.per_process):
        count = min(a.per_process, n - first)
        argv = [sys.executable, str(HERE / "swarm_fleet.py"), target.url, str(count)]
        # the processes stop pacing their starts at 3/4 of the ramp, which leaves the rest
        # for the late ones to become live
        argv += [str(first), ",".join(queues), str(0.75 * a.ramp)]
        argv += [str(a.share if shared else 1)]
        # the workers' warnings and errors, read after the stop (closed with the harness)
        logs.append(tempfile.TemporaryFile("w+"))  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=logs[-1],
                text=True,
                env={**os.environ, "KUBEQ_LOG_LEVEL": "WARNING"},
            )
        )
    try:
        row = measure(target, n, a, procs, queues, shared, empty)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    lines = []
    for f in logs:
        f.seek(0)
        lines += [ln.strip() for ln in f if "WARNING" in ln or "ERROR" in ln]
    row["worker_log_lines"] = len(lines)
    # what went wrong first, then the recoveries
    seen = sorted({ln.split(" ", 2)[-1][:200] for ln in lines}, key=lambda m: "again" in m)
    row["worker_log_sample"] = seen[:8]
    return row


def tell(procs: list[subprocess.Popen[str]], line: str) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(line + "\n")
        p.stdin.flush()


def measure(
    target: Target,
    n: int,
    a: argparse.Namespace,
    procs: list[subprocess.Popen[str]],
    queues: list[str],
    shared: bool,
    empty: float,
) -> dict[str, Any]:
    """The windows, once every worker is live; a fleet that is not all live by the ramp's
    deadline is measured as it is and its row says how many were."""
    started = time.monotonic()
    for p in procs:  # each process starts its workers batch by batch (swarm_fleet.py)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    client = kubeq.App(target.url)
    count = live(client, queues)
    while count < n and time.monotonic() - started < a.ramp:
        time.sleep(1)
        count = live(client, queues)
    ramp = time.monotonic() - started
    time.sleep(a.settle)
    tell(procs, "measure")
    idle = window(target, a.idle, lambda: None)
    live_after_idle = live(client, queues)
    sent = 0
    t0 = time.monotonic()

    def enqueue() -> None:
        nonlocal sent
        due = int((time.monotonic() - t0) * a.rate)
        if due > sent:
            now = time.time()
            client.enqueue_many(
                swarm_fleet.touch.s(now).set(queue=queues[k % len(queues)])
                for k in range(sent, due)
            )
            sent = due

    busy = window(target, a.busy, enqueue)
    # workers whose own loop fell too far behind to beat drop out of "live": a harness lag
    live_at_end = live(client, queues)
    tell(procs, "stop")
    reports = []
    deadline = time.monotonic() + STOP_SECONDS
    for p in procs:  # one too starved to report by the deadline is left out, and killed
        assert p.stdout is not None
        left = max(0.0, deadline - time.monotonic())
        if select.select([p.stdout], [], [], left)[0]:
            reports.append(json.loads(p.stdout.readline()))
    client.close()
    starts = sorted(s for r in reports for s in r["starts"])
    per_worker = [j for r in reports for j in r["jobs_per_worker"]]
    return {
        "target": target.name,
        "workers": n,
        "masters": len(target.masters),
        "queues": len(queues),
        "processes": len(procs),
        "shared_client": shared,
        "workers_per_client": a.share if shared else 1,
        "fetched_when_ready": sum(r["fetched_when_ready"] for r in reports),
        "live_at_start": count,
        "live_after_idle": live_after_idle,
        "live_at_end": live_at_end,
        "maxclients": target.maxclients(),
        "ramp_s": round(ramp, 1),
        "idle": idle,
        "busy": busy,
        "rate": a.rate,
        "jobs_sent": sent,
        "jobs_started": len(starts),
        "start_p50_ms": pct(starts, 0.50),
        "start_p99_ms": pct(starts, 0.99),
        # fetch fairness: how the jobs spread over the workers (each a job at a time)
        "workers_that_started_jobs": sum(1 for j in per_worker if j),
        "most_jobs_one_worker": max(per_worker, default=0),
        "slowest_renewal_ms": round(
            max((r["slowest_renewal_s"] for r in reports), default=0.0) * 1000, 1
        ),
        "slowest_idle_beat_ms": round(
            max((r["slowest_beat_s"] for r in reports), default=0.0) * 1000, 1
        ),
        "longest_renewal_gap_s": round(max((r["longest_gap_s"] for r in reports), default=0.0), 2),
        "fleet_cpu_s": round(sum(r["cpu_s"] for r in reports), 1),
        "fleet_max_rss_mb": round(sum(r["max_rss_mb"] for r in reports)),
        "unreported_processes": len(procs) - len(reports),
        "empty_memory": empty,
        "load": round(os.getloadavg()[0], 1),
        "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


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


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, math.floor(q * len(values)))] * 1000, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 10,000 needs more than two shared cores for the harness (bench/README.md, The swarm)
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--targets", default="redis,cluster")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of the idle window")
    ap.add_argument("--busy", type=float, default=30.0, help="seconds of the busy window")
    ap.add_argument("--rate", type=float, default=10.0, help="jobs a second when busy")
    ap.add_argument("--per-process", type=int, default=250, help="workers per event loop")
    ap.add_argument("--share", type=int, default=10, help="workers per client, when shared")
    ap.add_argument("--masters", type=int, default=3, help="the cluster's masters")
    ap.add_argument("--queues-per-master", type=int, default=1, help="queues on each master")
    ap.add_argument("--ramp", type=float, default=480.0, help="most seconds until all live")
    ap.add_argument("--settle", type=float, default=25.0, help="seconds before measuring")
    ap.add_argument("--out", type=Path, default=HERE / "results" / f"swarm-{dt.date.today()}.json")
    ap.add_argument("--readme", type=Path, default=HERE / "README.md")
    ap.add_argument("--render-only", action="store_true", help="only rewrite the README")
    ap.add_argument("--merge", action="store_true", help="replace only these rows in --out")
    a = ap.parse_args()
    if a.render_only:
        render(a.out, a.readme)
        return
    load = os.getloadavg()[0]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    earlier: dict[str, Any] = {"rows": [], "runs": []}
    if a.merge and a.out.exists():  # keep the other rows of an earlier run of the same file
        earlier = json.loads(a.out.read_text())
        earlier.setdefault("runs", [earlier["machine"]])
    rows: list[dict[str, Any]] = []

    def save() -> None:
        """The results so far (after each row: a run stopped midway keeps its rows)."""
        fresh = {(r["target"], r["workers"]) for r in rows}
        kept = [r for r in earlier["rows"] if (r["target"], r["workers"]) not in fresh]
        machine = (
            f"{os.cpu_count()} cores shared with other work, load {load:.1f} at start, "
            f"{os.getloadavg()[0]:.1f} at the end; open files per process {soft:,} "
            f"(hard {hard:,})"
        )
        result = {
            "machine": machine,
            "runs": [*earlier["runs"], machine],
            "settings": vars(a) | {"out": str(a.out), "readme": str(a.readme)},
            "median_load": statistics.median([load, os.getloadavg()[0]]),
            "rows": sorted(kept + rows, key=lambda r: (r["target"] != "redis", r["workers"])),
        }
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="kubeq-swarm-") as tmp:
        for name in a.targets.split(","):
            if name == "cluster":
                target = start_cluster(Path(tmp), a.masters)
            else:
                target = start_redis(Path(tmp))
            try:
                for n in (int(s) for s in a.sizes.split(",")):
                    rows.append(run_size(target, n, a))
                    print(json.dumps(rows[-1]), flush=True)
                    save()
            finally:
                target.stop()
    render(a.out, a.readme)


def render(results: Path, readme: Path) -> None:
    """Rewrite the README's swarm block and docs/scaling.md's capacity block from the
    results file (bench/fleet_report.py)."""
    rel = str(results.resolve().relative_to(ROOT))
    readme.write_text(report.rewrite(readme.read_text(), rel, {"swarm"}))
    scaling = ROOT / "docs" / "scaling.md"
    scaling.write_text(report.rewrite(scaling.read_text(), rel, {"capacity"}))


if __name__ == "__main__":
    main()
