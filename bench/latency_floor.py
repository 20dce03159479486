"""The floor under enqueue -> start on an idle worker: the same measurement as run.py's latency
scenario, with no queue library, for the shapes a job's path can take.

    .venv/bin/python bench/latency_floor.py --results bench/results/latency-floor-DATE.json
    .venv/bin/python bench/report.py bench/README.md      # the bench:latencyfloor block

A private redis-server; a consumer process (the idle worker) and this process (the
producer). 200 times, as the latency scenario does: note ``time.time()``, send, wait until
the consumer has recorded its own ``time.time()`` at the "start", sleep 10-50 ms. Each step
below is one more process waking on the way to the start, the cost that dominates on an
idle machine (a CPU woken from idle); the chains:

* ``pop``: LPUSH the job; the consumer's BRPOP returns it and it starts (a list-based queue,
  one wake: RQ's, Celery's and Dramatiq's shape, without their own code);
* ``wake+fetch``: a script that pushes a wake-up token; the consumer's BLPOP returns, it
  calls a script that hands it the job, and starts (kubeq's shape: the lease is taken by the
  fetch script, atomically, and the wake-up carries no job);
* ``wake+fetch+thread``: as ``wake+fetch``, the start in a pool thread (a sync task);
* ``asyncio wake+fetch+thread``: the same with redis-py's asyncio client and
  ``run_in_executor`` (kubeq's worker loop);
* ``pop+thread``: ``pop`` with the start in a pool thread;
* ``pipelined wake+fetch+thread``: the BLPOP and the fetch script sent together in one
  pipeline: Redis runs the fetch as soon as the BLPOP returns, so the worker wakes once (a
  design kubeq does not use yet).

Standard library and redis-py only.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
CHAINS = [
    "pop",
    "pop+thread",
    "wake+fetch",
    "wake+fetch+thread",
    "asyncio wake+fetch+thread",
    "pipelined wake+fetch+thread",
]
FETCH = "return redis.call('HGET', KEYS[1], 'payload')"
WAKE = "return redis.call('RPUSH', KEYS[1], '1')"

CONSUMER = r"""
import asyncio, sys, time, concurrent.futures, redis, redis.asyncio
url, chain = sys.argv[1], sys.argv[2]
FETCH = "return redis.call('HGET', KEYS[1], 'payload')"
pool = concurrent.futures.ThreadPoolExecutor(4)
r = redis.Redis.from_url(url)
def start(payload):
    r.rpush("floor:start", f"{payload.decode()} {time.time():.6f}")
if chain.startswith("asyncio"):
    async def main():
        a = redis.asyncio.Redis.from_url(url)
        sha = await a.script_load(FETCH)
        loop = asyncio.get_running_loop()
        while True:
            if await a.blpop(["floor:wake"], 5):
                loop.run_in_executor(pool, start, await a.evalsha(sha, 1, "floor:job"))
    asyncio.run(main())
sha = r.script_load(FETCH)
while True:
    if chain.startswith("pop"):
        got = r.brpop(["floor:jobs"], 5)
        if got and chain.endswith("thread"):
            pool.submit(start, got[1])
        elif got:
            start(got[1])
    elif chain.startswith("pipelined"):
        p = r.pipeline(transaction=False)
        p.blpop(["floor:wake"], 5)
        p.evalsha(sha, 1, "floor:job")
        woken, payload = p.execute()
        if woken:
            pool.submit(start, payload)
    elif r.blpop(["floor:wake"], 5):
        payload = r.evalsha(sha, 1, "floor:job")
        if chain.endswith("thread"):
            pool.submit(start, payload)
        else:
            start(payload)
"""


def chain(url: str, name: str, n: int) -> dict[str, Any]:
    r = redis.Redis.from_url(url)
    r.delete("floor:start", "floor:wake", "floor:jobs")
    wake = r.register_script(WAKE)
    consumer = subprocess.Popen([sys.executable, "-c", CONSUMER, url, name])
    rng = random.Random(7)
    try:
        sent: list[float] = []
        for i in range(-1, n):  # -1: the warm-up
            if i >= 0:
                sent.append(time.time())
            if name.startswith("pop"):
                r.lpush("floor:jobs", str(i))
            else:
                r.hset("floor:job", "payload", str(i))
                wake(keys=["floor:wake"])
            deadline = time.monotonic() + 30
            while r.llen("floor:start") < i + 2:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: job {i} did not start in 30 s")
                time.sleep(0.0002)
            time.sleep(rng.uniform(0.010, 0.050) if i >= 0 else 0.5)
        starts = {int(a): float(b) for a, b in (x.split() for x in r.lrange("floor:start", 1, -1))}
    finally:
        consumer.kill()
        consumer.wait()
    lat = sorted((starts[i] - sent[i]) * 1000 for i in range(n))
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"chain": name, "p50_ms": statistics.median(lat), "p99_ms": q[98], "n": n}


def render(res: dict[str, Any], path: str) -> str:
    m = res["machine"]
    lines = [
        f"Results: `{path}`; {res['date']}, {m.get('cores')} cores, load "
        f"{m['load_avg_at_start'][0]:.1f} at the start, {m['load_avg_at_end'][0]:.1f} at the "
        f"end; {res['reps']} repetitions of {res['n']} jobs each, interleaved; the median of "
        "the repetitions' p50 and p99.",
        "",
        "| chain (no queue library) | enqueue -> start p50 | p99 |",
        "|---|--:|--:|",
    ]
    for name in CHAINS:
        rows = [c for c in res["runs"] if c["chain"] == name]
        p50 = statistics.median(c["p50_ms"] for c in rows)
        p99 = statistics.median(c["p99_ms"] for c in rows)
        lines.append(f"| {name} | {p50:.2f} ms | {p99:.2f} ms |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--results", required=True, help="the JSON file to write")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    sys.path[:0] = [str(HERE), str(HERE.parent)]
    from figures import machine, private_redis, write_results

    info = machine()
    runs = []
    with private_redis("floor") as url:
        for rep in range(a.reps):
            for name in CHAINS:
                runs.append({**chain(url, name, a.n), "rep": rep})
                print(json.dumps(runs[-1]), flush=True)
    write_results(a.results, info, runs, render, n=a.n, reps=a.reps, redis_py=redis.__version__)


if __name__ == "__main__":
    main()
