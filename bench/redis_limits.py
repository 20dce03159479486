"""Redis's own limit in the same run, for the commands kubeq's hot path uses.

    .venv/bin/python bench/redis_limits.py --redis-url redis://127.0.0.1:PORT/0 [--quick]

Prints one JSON line with:

* ``redis_benchmark``: requests/s from ``redis-benchmark`` (50 clients, the default) for the
  commands of kubeq's enqueue/fetch/ack scripts (HSET, HMGET, ZADD, ZPOPMIN, RPUSH, HINCRBY,
  EVALSHA of a one-line script for the cost of a script call), without and with pipelining
  (``-P 32``).
* ``raw``: a redis-py loop in ONE process doing the minimum round trips per job, with a
  payload of kubeq's size: ``enqueue_single`` (one LPUSH per job, one round trip each),
  ``enqueue_pipelined`` (all LPUSHes in one pipeline), ``drain_per_job`` (one round trip per
  job: pop the next job and store the previous one's result) and ``drain_batched`` (one round
  trip per 32 jobs: LPOP count 32 + their 32 results). No lease, no retry, no priority: the
  floor any Redis queue in Python pays, which kubeq is shown as a percentage of. The loops run
  ``--repeat`` times (3); ``raw`` is each one's median, ``raw_runs`` every run. ``run.py``
  runs them itself, once at the start of each repetition of the systems (``raw_loops``), so
  that a noisy moment of the run hits the raw loops as it hits the systems, and calls this
  with ``--repeat 0`` for ``redis_benchmark`` alone.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import statistics
import subprocess
import time
from urllib.parse import urlsplit

import redis

PAYLOAD = b'{"task":"bench.noop","args":[],"kwargs":{}}'


def redis_benchmark(host: str, port: int, n: int) -> dict[str, dict[str, float]]:
    exe = shutil.which("redis-benchmark")
    if exe is None:
        return {}
    r = redis.Redis(host=host, port=port)
    sha = r.script_load("return 1")
    commands = {
        "HSET": [
            "HSET",
            "bench:job:__rand_int__",
            "status",
            "queued",
            "payload",
            "x" * len(PAYLOAD),
        ],
        "HMGET": ["HMGET", "bench:job:__rand_int__", "status", "payload", "attempts"],
        "HINCRBY": ["HINCRBY", "bench:job:__rand_int__", "lease", "1"],
        "ZADD": ["ZADD", "bench:ready", "__rand_int__", "__rand_int__"],
        "ZPOPMIN": ["ZPOPMIN", "bench:ready"],
        "RPUSH": ["RPUSH", "bench:wake", "1"],
        "EVALSHA": ["EVALSHA", sha, "0"],
    }
    out: dict[str, dict[str, float]] = {}
    for pipeline in (1, 32):
        key = "no_pipeline" if pipeline == 1 else "pipeline_32"
        out[key] = {}
        for name, cmd in commands.items():
            if name == "ZPOPMIN":  # something to pop
                r.delete("bench:ready")
                pipe = r.pipeline(transaction=False)
                for i in range(n):
                    pipe.zadd("bench:ready", {str(i): i})
                pipe.execute()
            res = subprocess.run(
                [
                    exe,
                    "-h",
                    host,
                    "-p",
                    str(port),
                    "-n",
                    str(n),
                    "-r",
                    "100000",
                    "-P",
                    str(pipeline),
                    "--csv",
                    *cmd,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows = list(csv.reader(io.StringIO(res.stdout)))
            out[key][name] = float(rows[-1][1])
    r.flushall()
    r.close()
    return out


def raw_loops(url: str, n: int) -> dict[str, float]:
    r = redis.Redis.from_url(url)
    r.flushall()
    out: dict[str, float] = {}
    t = time.perf_counter()
    for _ in range(n):
        r.lpush("raw:q", PAYLOAD)
    out["enqueue_single"] = n / (time.perf_counter() - t)
    r.delete("raw:q")
    t = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    for _ in range(n):
        pipe.lpush("raw:q", PAYLOAD)
    pipe.execute()
    out["enqueue_pipelined"] = n / (time.perf_counter() - t)
    # drain: one round trip per job (pop the next, store the previous one's result)
    t = time.perf_counter()
    prev = None
    done = 0
    while True:
        pipe = r.pipeline(transaction=False)
        if prev is not None:
            pipe.set(f"raw:done:{done}", b"null", ex=3600)
        pipe.rpop("raw:q")
        prev = pipe.execute()[-1]
        if prev is None:
            break
        done += 1
    out["drain_per_job"] = done / (time.perf_counter() - t)
    # drain: one round trip per batch of 32 jobs
    pipe = r.pipeline(transaction=False)
    for _ in range(n):
        pipe.lpush("raw:q", PAYLOAD)
    pipe.execute()
    t = time.perf_counter()
    batch: list[bytes] = []
    done = 0
    while True:
        pipe = r.pipeline(transaction=False)
        for _ in batch:
            done += 1
            pipe.set(f"raw:done:{done}", b"null", ex=3600)
        pipe.rpop("raw:q", 32)
        batch = pipe.execute()[-1] or []
        if not batch:
            break
    out["drain_batched_32"] = done / (time.perf_counter() - t)
    r.flushall()
    r.close()
    return out


def raw_medians(
    runs: list[dict[str, float]],
) -> dict[str, dict[str, float] | list[dict[str, float]]]:
    """The median of each raw loop over the runs (``raw``), and every run (``raw_runs``): one
    run of a 20,000-job loop moved by 2x between two bench days."""
    return {
        "raw": {k: statistics.median(run[k] for run in runs) for k in runs[0]},
        "raw_runs": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--n", type=int, default=20000, help="jobs in the raw loops")
    ap.add_argument("--requests", type=int, default=100000, help="redis-benchmark -n")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the raw loops (median; 0: none)")
    a = ap.parse_args()
    parts = urlsplit(a.redis_url)
    out = {
        "redis_benchmark": redis_benchmark(
            parts.hostname or "127.0.0.1", parts.port or 6379, a.requests
        ),
        **(raw_medians([raw_loops(a.redis_url, a.n) for _ in range(a.repeat)]) if a.repeat else {}),
        "redis_py": redis.__version__,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
