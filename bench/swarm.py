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
holding a job; lease 30 s), and the delivery account: jobs started or delivered more than
once, with the reason Redis records (swarm_deliveries.py). On the cluster the figures are
summed over the masters.

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

import kubeq
from kubeq import defaults

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import report  # noqa: E402
import swarm_deliveries  # noqa: E402
import swarm_fleet  # noqa: E402
from swarm_redis import Target, queue_names, start_cluster, start_redis, window  # noqa: E402

SHARE_ABOVE = {"redis": 5_000, "cluster": 1_000}
"""Above this many workers, each ``--share`` workers share one client (one pool; each still
holds its own BLPOP connection): on one redis-server two connections per worker would pass
MAXCLIENTS; a Redis Cluster client of redis-py takes about 2 MB of the harness's memory
(10,000 of them would not fit in this machine's 24 GB)."""


STOP_SECONDS = 180.0
"""How long the processes have, all together, to stop their workers and report."""


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
    shared = n > (SHARE_ABOVE[target.name] if a.share_above is None else a.share_above)
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
    ids: list[tuple[str, str]] = []
    t0 = time.monotonic()

    def enqueue() -> None:
        nonlocal sent
        due = int((time.monotonic() - t0) * a.rate)
        if due > sent:
            now = time.time()
            batch = [queues[k % len(queues)] for k in range(sent, due)]
            jobs = client.enqueue_many(swarm_fleet.touch.s(now).set(queue=q) for q in batch)
            ids.extend((q, job.id) for q, job in zip(batch, jobs, strict=True))
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
    deliveries = swarm_deliveries.account(client, ids, reports, defaults.LEASE_SECONDS)
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
        **deliveries,
        "fleet_cpu_s": round(sum(r["cpu_s"] for r in reports), 1),
        "fleet_max_rss_mb": round(sum(r["max_rss_mb"] for r in reports)),
        "unreported_processes": len(procs) - len(reports),
        "empty_memory": empty,
        "load": round(os.getloadavg()[0], 1),
        "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


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
    ap.add_argument("--share-above", type=int, help="share clients above this many workers")
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
