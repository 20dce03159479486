"""A worker's drain with Redis on loopback and a network hop away, for kubeq and variants.

    .venv/bin/python bench/drain_distance.py --variant before=/tmp/before/src \
        --variant after=src --results bench/results/drain-distance-DATE.json
    .venv/bin/python bench/report.py bench/README.md     # the bench:draindistance block

A private redis-server, and for each distance a Toxiproxy in front of it (the suite's
``tests/support/toxiproxy.py``, built by ``make toxiproxy-bin``) whose ``latency`` toxic
delays every reply by that many ms: a worker in one zone and Redis in another is about 1 ms
away. For every repetition, distance, task kind (a sync no-op in the thread lane, an
``async def`` no-op on the loop) and ``--concurrency``, each variant in turn (interleaved, so
a noisy moment hits them all): ``--n`` jobs are enqueued directly, then one ``kubeq worker``
of that variant (kubeq's bench venv, the variant's ``src`` first on ``PYTHONPATH``) drains
them through the proxy. The clock starts when the first fetch has taken jobs and stops when
none is ready or leased (polled every 5 ms), so the worker's start-up is not counted. Also
read over the same window: the worker's CPU (``/proc``) and Redis's (``INFO cpu``) per job.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "systems"))

from procs import session_cpu  # noqa: E402 - bench/systems: the bench's CPU reader

TASKS = "distance_tasks"
"""bench/distance_tasks.py: the no-op tasks, sync and async."""
KINDS = {"sync": "bench.noop", "async": "bench.anoop"}


def drain(
    r: redis.Redis,
    direct_url: str,
    python: str,
    src: str,
    url: str,
    kind: str,
    run: tuple[int, int],
) -> dict[str, Any]:
    """One drain of ``n`` no-op jobs by one worker of ``src`` at ``--concurrency``
    (``run``) reaching Redis at ``url``; the jobs are enqueued at ``direct_url``."""
    from figures import redis_cpu  # bench/ is on the path (main)

    concurrency, n = run
    r.flushall()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(src).resolve()), str(HERE)]),
        "KUBEQ_REDIS_URL": url,
    }
    direct = {**env, "KUBEQ_REDIS_URL": direct_url}
    subprocess.run(
        [python, "-c", f"import {TASKS} as t; t.enqueue({KINDS[kind]!r}, {n})"],
        env=direct,
        check=True,
    )
    ready = "kubeq:{default}:ready"
    active = "kubeq:{default}:active"  # the leased jobs (a sorted set by lease expiry)
    worker = subprocess.Popen(
        [
            python,
            "-c",
            "import sys; from kubeq.cli import main; sys.argv[0] = 'kubeq'; sys.exit(main())",
            "worker",
            TASKS,
            "--queue",
            "default",
            "--log-level",
            "warning",
            "--concurrency",
            str(concurrency),
        ],
        env=env,
        start_new_session=True,  # its session is what procs.session_cpu reads
    )
    try:
        deadline = time.monotonic() + 120
        while r.zcard(ready) >= n:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"the worker took no job (exit {worker.poll()})")
            time.sleep(0.001)
        t0, cpu0, rcpu0 = time.perf_counter(), session_cpu(worker.pid), redis_cpu(r)
        while r.zcard(ready) or r.zcard(active):
            if time.monotonic() > deadline:
                raise RuntimeError("the drain took more than 120 s")
            time.sleep(0.005)
        t1, cpu1, rcpu1 = time.perf_counter(), session_cpu(worker.pid), redis_cpu(r)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    return {
        "rate": n / (t1 - t0),
        "worker_cpu_us": (cpu1 - cpu0) / n * 1e6,
        "redis_cpu_us": (rcpu1 - rcpu0) / n * 1e6,
    }


def render(res: dict[str, Any], path: str) -> str:
    m = res["machine"]
    labels = list(res["variants"])
    lines = [
        f"Results: `{path}`; {res['date']}, {m.get('cores')} cores, load "
        f"{m['load_avg_at_start'][0]:.1f} at the start, {m['load_avg_at_end'][0]:.1f} at the "
        f"end; {res['reps']} repetitions of {res['n']:,} jobs each, the variants interleaved; "
        "the median of the repetitions (their range in brackets), and the worker's and "
        "Redis's CPU per job over the same window.",
        "",
        "| Redis | task | concurrency | "
        + " | ".join(f"{v}: jobs/s" for v in labels)
        + f" | {labels[-1]} / {labels[0]} | "
        + " | ".join(f"{v}: worker, Redis CPU per job" for v in labels)
        + " |",
        "|---|---|--:|" + "--:|" * len(labels) + "--:|" + "--:|" * len(labels),
    ]
    for lat in res["latencies_ms"]:
        for kind in res["kinds"]:
            for c in res["concurrency"]:
                cells, cpu, rates = [], [], []
                for v in labels:
                    rows = [
                        x
                        for x in res["runs"]
                        if (x["latency_ms"], x["kind"], x["concurrency"], x["variant"])
                        == (lat, kind, c, v)
                    ]
                    rs = [x["rate"] for x in rows]
                    rates.append(statistics.median(rs))
                    cells.append(f"{rates[-1]:,.0f} ({min(rs):,.0f}-{max(rs):,.0f})")
                    cpu.append(
                        f"{statistics.median(x['worker_cpu_us'] for x in rows):.0f} µs, "
                        f"{statistics.median(x['redis_cpu_us'] for x in rows):.0f} µs"
                    )
                where = "loopback" if lat is None else f"+{lat} ms (Toxiproxy)"
                lines.append(
                    f"| {where} | {kind} | {c} | "
                    + " | ".join(cells)
                    + f" | {rates[-1] / rates[0]:.2f}x | "
                    + " | ".join(cpu)
                    + " |"
                )
    return "\n".join(lines)


def _latency(text: str) -> int | None:
    return None if text == "direct" else int(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--results", required=True, help="the JSON file to write")
    ap.add_argument(
        "--variant", action="append", required=True, metavar="LABEL=SRC", help="in table order"
    )
    ap.add_argument("--venvs", default=os.path.expanduser("~/.cache/kubeq"))
    ap.add_argument("--latency", default="direct,1", help="'direct' and/or ms through Toxiproxy")
    ap.add_argument("--kinds", default="sync,async")
    ap.add_argument("--concurrency", default="4,128")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    sys.path[:0] = [str(HERE), str(ROOT)]
    from bytecode import compile_all
    from figures import machine, write_results
    from run import venv_python

    from tests.support.redisserver import RedisServer
    from tests.support.toxiproxy import ToxiproxyServer

    variants = dict(v.split("=", 1) for v in a.variant)
    python = venv_python(Path(a.venvs), "kubeq")
    compile_all(python, [str(Path(p).resolve()) for p in variants.values()] + [str(HERE)])
    latencies = [_latency(x) for x in a.latency.split(",")]
    kinds = a.kinds.split(",")
    concurrency = [int(c) for c in a.concurrency.split(",")]
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="kubeq-distance-"))
    server = RedisServer(work / "redis")
    server.start()
    (work / "toxiproxy").mkdir()
    toxiproxy = ToxiproxyServer(work / "toxiproxy")
    toxiproxy.start()
    r = redis.Redis.from_url(server.url)
    runs = []
    try:
        proxies = {}
        for lat in latencies:
            if lat is not None:
                proxies[lat] = toxiproxy.proxy(f"redis{lat}", server.port)
                if lat:
                    proxies[lat].add("latency", latency=lat)
        for rep in range(a.reps):
            for lat in latencies:
                url = server.url if lat is None else proxies[lat].url
                for kind in kinds:
                    for c in concurrency:
                        for label, src in variants.items():
                            one = drain(r, server.url, python, src, url, kind, (c, a.n))
                            runs.append(
                                {
                                    **one,
                                    "rep": rep,
                                    "latency_ms": lat,
                                    "kind": kind,
                                    "concurrency": c,
                                    "variant": label,
                                }
                            )
                            print(json.dumps(runs[-1]), flush=True)
    finally:
        toxiproxy.stop()
        server.stop()
    write_results(
        a.results,
        info,
        runs,
        render,
        n=a.n,
        reps=a.reps,
        variants=variants,
        latencies_ms=latencies,
        kinds=kinds,
        concurrency=concurrency,
    )


if __name__ == "__main__":
    main()
