"""Where a worker's drain goes: the worker's loop, Redis, and the round trips between them.

    .venv/bin/python bench/drain_anatomy.py --results bench/results/drain-anatomy-DATE.json
    .venv/bin/python bench/report.py bench/README.md      # the bench:drainanatomy block

A private redis-server; for each repetition and ``--concurrency`` (4, the default, and 128,
unless the option names others), ``--n`` no-op jobs of a sync task are enqueued, Redis's counters
are reset, and one ``kubeq worker --burst`` (kubeq's bench venv, this checkout's ``src`` or
``--src DIR``'s, and each ``--variant LABEL=DIR`` in turn, each repetition starting with the
next build) drains them. The worker runs under a small harness (``--child``) that times, inside the
worker process and without a profiler:

* each round trip of the worker's loop (``Worker._exchange``: the acknowledgements and the
  fetch in one pipeline): how many per second, how many jobs each took and acknowledged, how
  long from its send to its reply read, and the share of the drain a round trip was out;
* how long the event loop was blocked in its selector (``epoll``) waiting for something to
  happen, as a share of the drain: the time the loop had nothing to run, neither a job's
  step nor a reply to read;
* the worker's CPU per job (the process's, its task threads included), and how long and how
  often the worker was in a garbage collection (``gc.callbacks``).

From Redis, over the same drain: its CPU per job (``INFO cpu``) and, from ``INFO
commandstats``, the time per job in the scripts (``EVALSHA``: the fetch and the
acknowledgement scripts, with the commands they call) and in each command the scripts call
(counted in the script's time too). The drain's clock runs from the worker's first round
trip to its last (its start-up and exit are not counted).

Standard library and redis-py only in this process; the harness imports kubeq.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TASKS = "distance_tasks"
"""bench/distance_tasks.py: the no-op tasks."""
CONCURRENCY = (4, 128)

CHILD = r"""
import asyncio, gc, json, os, sys, time
from kubeq.worker import loop as L

collections = []  # (start, end) of each garbage collection
def _timed_gc(phase, info, _at=[0.0]):
    if phase == "start":
        _at[0] = time.perf_counter()
    else:
        collections.append((_at[0], time.perf_counter()))
gc.callbacks.append(_timed_gc)

trips = []  # (sent, read, cpu at send, cpu at read, acknowledged, taken)
waits = []  # (from, to): the loop blocked in its selector
real_exchange = L.Worker._exchange

async def exchange(self, fetch):
    acks, held = len(self._acks), len(self.inflight)
    sent, cpu = time.perf_counter(), time.process_time()
    out = await real_exchange(self, fetch)
    trips.append((sent, time.perf_counter(), cpu, time.process_time(), acks,
                  len(self.inflight) - held + acks))
    return out

real_run = L.Worker.run

async def run(self):
    selector = asyncio.get_running_loop()._selector
    select = selector.select
    def timed(timeout=None):
        t = time.perf_counter()
        try:
            return select(timeout)
        finally:
            waits.append((t, time.perf_counter()))
    selector.select = timed
    return await real_run(self)

L.Worker._exchange = exchange
L.Worker.run = run
def _exit(code):
    raise SystemExit(code)
os._exit = _exit  # the CLI's hard exit would skip the report below
from kubeq.cli import main
sys.argv = ["kubeq", "worker", sys.argv[1], "--concurrency", sys.argv[2], "--burst",
            "--log-level", "warning"]
try:
    main()
except SystemExit:
    pass
took = [t for t in trips if t[5] > 0]  # round trips that took or acknowledged jobs
first, last = took[0], took[-1]
start, end = first[0], last[1]
blocked = sum(max(0.0, min(b, end) - max(a, start)) for a, b in waits)
in_gc = [(a, b) for a, b in collections if start <= a <= end]
print(json.dumps({
    "gc_s": sum(b - a for a, b in in_gc),
    "gc_count": len(in_gc),
    "span_s": end - start,
    "trips": [[a - start, b - start, acks, jobs] for a, b, _, _, acks, jobs in took],
    "blocked_s": blocked,
    "cpu_s": last[3] - first[2],
}))
"""


def drain(
    r: redis.Redis, python: str, url: str, n: int, concurrency: int, src: str
) -> dict[str, Any]:
    """One drain of ``n`` no-op jobs by one worker at ``concurrency``, of kubeq from ``src``."""
    from figures import redis_cpu  # bench/ is on the path (main)

    env = {**os.environ, "KUBEQ_REDIS_URL": url}
    env["PYTHONPATH"] = os.pathsep.join([src, str(HERE)])
    r.flushall()
    fill = f"import {TASKS} as t; t.enqueue('bench.noop', {n})"
    subprocess.run([python, "-c", fill], env=env, check=True)
    r.config_resetstat()
    rcpu0 = redis_cpu(r)
    p = subprocess.run(
        [python, "-c", CHILD, TASKS, str(concurrency)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rcpu = redis_cpu(r) - rcpu0
    child = json.loads(p.stdout.strip().splitlines()[-1])
    stats = r.info("commandstats")
    trips = child["trips"]
    span = child["span_s"]
    rtts = sorted(b - a for a, b, _, _ in trips)
    per_job = {
        k.removeprefix("cmdstat_"): round(v["usec"] / n, 2)
        for k, v in stats.items()
        if v["usec"] / n >= 0.1
    }
    return {
        "concurrency": concurrency,
        "n": n,
        "rate": n / span,
        "worker_cpu_us_per_job": child["cpu_s"] / n * 1e6,
        "redis_cpu_us_per_job": rcpu / n * 1e6,
        "redis_us_per_job_by_command": per_job,
        "round_trips_per_s": len(trips) / span,
        "jobs_per_round_trip": statistics.mean(j for _, _, _, j in trips),
        "acks_per_round_trip": statistics.mean(a for _, _, a, _ in trips),
        "round_trip_ms_p50": rtts[len(rtts) // 2] * 1000,
        "round_trip_ms_p90": rtts[int(len(rtts) * 0.9)] * 1000,
        "round_trip_out_share": sum(rtts) / span,
        "loop_blocked_share": child["blocked_s"] / span,
        "gc_us_per_job": child["gc_s"] / n * 1e6,
        "gc_per_1000_jobs": child["gc_count"] / n * 1000,
    }


def render(res: dict[str, Any], path: str) -> str:
    """The bench:drainanatomy block: medians of the repetitions, one column per setting."""
    runs = res["runs"]
    builds = list(dict.fromkeys(r.get("build", "kubeq") for r in runs))
    settings = [
        (b, c) for b in builds for c in sorted({r["concurrency"] for r in runs})
    ]  # a column per build and setting

    def of(col: tuple[str, int]) -> list[dict[str, Any]]:
        return [r for r in runs if (r.get("build", "kubeq"), r["concurrency"]) == col]

    def med(col: tuple[str, int], key: str) -> float:
        return statistics.median(r[key] for r in of(col))

    def cmd(col: tuple[str, int], name: str) -> float:
        return statistics.median(r["redis_us_per_job_by_command"].get(name, 0.0) for r in of(col))

    def head(col: tuple[str, int]) -> str:
        return str(col[1]) if len(builds) == 1 else f"{col[0]}, {col[1]}"

    m = res["machine"]
    lines = [
        f"Results: `{path}`; {res['date']}, {m.get('cores', '?')} cores, load "
        f"{m['load_avg_at_start'][0]:.1f} at the start, {m['load_avg_at_end'][0]:.1f} at the "
        "end; "
        f"{res['reps']} repetition(s) of {res['n']:,} no-op jobs (a sync task) per setting, "
        "the median of the repetitions"
        + (f"; kubeq from `{res['src']}`" if res.get("src") else "")
        + "".join(f"; `{k}` from `{v}`" for k, v in res.get("variants", {}).items())
        + ("; the builds interleaved." if res.get("variants") else "."),
        "",
        "| one worker, "
        + ("`--concurrency`" if len(builds) == 1 else "build, `--concurrency`")
        + " | "
        + " | ".join(head(c) for c in settings)
        + " |",
        "|---|" + "--:|" * len(settings),
    ]
    rows = [
        ("drain, jobs/s", "rate", "{:,.0f}"),
        (
            "worker CPU per job (its task threads included)",
            "worker_cpu_us_per_job",
            "{:.1f} µs",
        ),
        ("Redis CPU per job (`INFO cpu`)", "redis_cpu_us_per_job", "{:.1f} µs"),
        ("round trips per second", "round_trips_per_s", "{:,.0f}"),
        ("jobs fetched per round trip", "jobs_per_round_trip", "{:.0f}"),
        ("outcomes acknowledged per round trip", "acks_per_round_trip", "{:.0f}"),
        ("round trip, send to reply read, p50", "round_trip_ms_p50", "{:.2f} ms"),
        ("round trip, p90", "round_trip_ms_p90", "{:.2f} ms"),
        ("share of the drain a round trip was out", "round_trip_out_share", "{:.0%}"),
        ("share of the drain the loop had nothing to run", "loop_blocked_share", "{:.0%}"),
        ("worker: in garbage collections, per job", "gc_us_per_job", "{:.1f} µs"),
        ("worker: garbage collections per 1,000 jobs", "gc_per_1000_jobs", "{:.1f}"),
    ]
    rows = [row for row in rows if all(row[1] in r for r in runs)]  # runs before a figure
    for label, key, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt.format(med(c, key)) for c in settings) + " |")
    names = sorted(
        {k for r in runs for k in r["redis_us_per_job_by_command"] if "|" not in k},
        key=lambda k: -max(cmd(c, k) for c in settings),
    )  # ("script|load" and other subcommands are not the scripts' calls)
    for name in names:
        label = (
            "Redis: in the scripts (`EVALSHA`), per job, the commands they call included"
            if name == "evalsha"
            else f"Redis: in `{name.upper()}`, per job (the scripts' calls: in the line above too)"
        )
        cells = " | ".join(f"{cmd(c, name):.2f} µs" for c in settings)
        lines.append(f"| {label} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--results", required=True, help="the JSON file to write")
    ap.add_argument("--venvs", default=os.path.expanduser("~/.cache/kubeq"))
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--src", help="the kubeq to drain with (this checkout's src by default)")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="another build of kubeq (DIR holds its package) drained in turn with --src's",
    )
    ap.add_argument(
        "--concurrency",
        default=",".join(map(str, CONCURRENCY)),
        help="the worker's --concurrency settings, comma-separated (default: %(default)s)",
    )
    a = ap.parse_args()
    settings = [int(c) for c in a.concurrency.split(",")]
    src = a.src or str(ROOT / "src")
    sys.path[:0] = [str(HERE), str(ROOT)]
    from figures import machine, private_redis, turn, write_results
    from run import venv_python

    python = venv_python(Path(a.venvs), "kubeq")
    info = machine()
    variants = dict(v.split("=", 1) for v in a.variant)
    builds = [("kubeq", src), *variants.items()]
    runs = []
    with private_redis("anatomy") as url:
        r = redis.Redis.from_url(url)
        for rep in range(a.reps):
            first_to_last = turn(builds, rep)
            for conc in settings:
                for label, path in first_to_last:
                    got = drain(r, python, url, a.n, conc, path)
                    runs.append({**got, "build": label, "rep": rep})
                    print(json.dumps(runs[-1]), flush=True)
    write_results(
        a.results,
        info,
        runs,
        render,
        n=a.n,
        reps=a.reps,
        redis_py=redis.__version__,
        src=a.src,
        variants=variants,
    )


if __name__ == "__main__":
    main()
