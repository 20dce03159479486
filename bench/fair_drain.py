"""What fairness keys cost a drain: the same jobs drained with and without ``fair_key``.

    .venv/bin/python bench/fair_drain.py [--label NAME] [--reps 3] [--noisy 30000]
        [--keys 1000] [--workers 2] [--concurrency 8]

On a throwaway redis-server, two shapes of backlog, each drained plain (no keys) and fair
(one key per tenant), the runs alternated (plain, fair, plain, fair, ...) so a noisy moment of
the shared machine hits both:

- ``noisy``: one tenant's ``--noisy`` jobs, then 50 tenants x 20 (the issue's mix);
- ``many``: ``--keys`` tenants x 20 jobs, enqueued round robin, so every fetch of the fair
  run serves a turn of many keys (the order's dearest case).

Two measures per run:

- ``fetch_only``: the fetch script called in a loop by this process (16 jobs a call, as a
  worker with 16 free slots asks), no worker: Redis' own time per job from
  ``INFO commandstats`` (``cmdstat_evalsha``) and the server's CPU time per job
  (``INFO cpu``; ``cpu``: steadier on a busy machine), the cost of the order alone;
- ``workers``: real ``kubeq worker`` processes (``--workers`` x ``--concurrency`` slots,
  no-op jobs) started on the paused queue, which is then resumed: jobs/s from the resume to
  the last job's start (recorded by the job itself), so start-up is not counted; and Redis'
  script time per job in that drain.

The median of the reps is taken per shape and measure; ``fair_over_plain`` is fair
throughput / plain throughput (jobs/s; for ``fetch_only``, the inverse ratio of the times
per job). Writes bench/results/fair-drain-<label>.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubeq
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA
from kubeq.store.wire import fetch_args
from kubeq.testing.server import RedisServer, stop_process

HERE = Path(__file__).resolve().parent
QUEUE = "tenants"
TASKS = """
import os
import time
import kubeq
from kubeq.store.connections import sync_client

app = kubeq.App()
_r = None


@app.task(queue="tenants", max_attempts=1)
def job(tenant: str) -> None:
    global _r
    if _r is None:
        _r = sync_client(os.environ["KUBEQ_REDIS_URL"])
    if _r.incr("bench:done") == int(os.environ["BENCH_TOTAL"]):
        _r.set("bench:t1", repr(time.time()))
"""


def backlog(shape: str, args: argparse.Namespace) -> list[str]:
    """The tenant of each job, in enqueue order."""
    if shape == "noisy":
        return ["noisy"] * args.noisy + [f"t{i}" for i in range(50) for _ in range(20)]
    return [f"k{k}" for _ in range(20) for k in range(args.keys)]


def enqueue(app: kubeq.App, task: Any, tenants: list[str], fair: bool) -> None:
    def calls() -> Iterator[kubeq.Call]:
        for t in tenants:
            c = task.s(t)
            yield c.set(fair_key=t) if fair else c

    app.enqueue_many(calls())


def script_usec(r: Any) -> int:
    return int(r.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0))


def redis_cpu(r: Any) -> float:
    """The redis-server's CPU seconds (user + system): unlike ``usec``, not inflated by the
    server waiting for a core on a busy machine."""
    cpu = r.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def fetch_only(url: str, task: Any, tenants: list[str], fair: bool) -> dict[str, Any]:
    """Drain by calling fetch.lua in a loop (16 jobs a call): Redis' time per job."""
    app = kubeq.App(url)
    r = app.redis
    r.flushall()
    enqueue(app, task, tenants, fair)
    r.config_resetstat()
    keys, argv = fetch_args("bench", 16, 600_000, 0, 600_000, [QueueKeys.of(QUEUE)])
    sha = LUA["fetch"].sha
    r.script_load(LUA["fetch"].script)
    cpu0 = redis_cpu(r)
    jobs = 0
    t0 = time.perf_counter()
    while True:
        out = r.execute_command("EVALSHA", sha, len(keys), *keys, *argv)
        got = (len(out) - 2) // 7
        if got == 0:
            break
        jobs += got
    wall = time.perf_counter() - t0
    usec = script_usec(r)
    cpu = redis_cpu(r) - cpu0
    app.close()
    return {"fair": fair, "jobs": jobs, "wall_seconds": round(wall, 3),
            "redis_us_per_job": round(usec / max(jobs, 1), 2),
            "redis_cpu_us_per_job": round(cpu * 1e6 / max(jobs, 1), 2)}  # fmt: skip


def workers(url: str, here: Path, task: Any, tenants: list[str], fair: bool,
            args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """Drain with real worker processes started on the paused queue, then resumed."""
    app = kubeq.App(url)
    r = app.redis
    r.flushall()
    q = app.queue(QUEUE)
    q.pause()
    enqueue(app, task, tenants, fair)
    total = len(tenants)
    path = os.pathsep.join(p for p in (str(here), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "KUBEQ_REDIS_URL": url, "PYTHONPATH": path,
           "BENCH_TOTAL": str(total)}  # fmt: skip
    kubeq_bin = str(Path(sys.executable).with_name("kubeq"))
    command = [kubeq_bin, "worker", "fairdrain_tasks", "--queue", QUEUE,
               "--concurrency", str(args.concurrency)]  # fmt: skip
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(args.workers)
    ]
    keys = QueueKeys.of(QUEUE)
    try:
        deadline = time.monotonic() + 120
        while r.zcard(keys.workers) < args.workers:  # each one fetched once: it is up
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("the workers did not start")
            time.sleep(0.05)
        time.sleep(0.5)  # every worker is idle on its wake list
        r.config_resetstat()
        t0 = time.time()
        q.resume()
        r.rpush(keys.wake, *["1"] * args.workers)
        deadline = time.monotonic() + 1800
        while r.get("bench:t1") is None:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("the drain did not end")
            time.sleep(0.05)
        t1 = float(r.get("bench:t1"))  # type: ignore[arg-type]
        usec = script_usec(r)
    finally:
        for p in procs:
            stop_process(p, grace=30)
    app.close()
    return {"fair": fair, "jobs": total, "drain_seconds": round(t1 - t0, 3),
            "jobs_per_second": round(total / (t1 - t0), 1),
            "redis_script_us_per_job": round(usec / total, 2)}  # fmt: skip


def summary(runs: list[dict[str, Any]], field: str, higher_better: bool) -> dict[str, Any]:
    plain = statistics.median(r[field] for r in runs if not r["fair"])
    fair = statistics.median(r[field] for r in runs if r["fair"])
    ratio = fair / plain if higher_better else plain / fair
    return {f"plain_{field}": plain, f"fair_{field}": fair, "fair_over_plain": round(ratio, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--label", default=datetime.now(UTC).strftime("%Y-%m-%d"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--noisy", type=int, default=30_000)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--shapes", default="noisy,many")
    ap.add_argument("--skip-workers", action="store_true")
    args = ap.parse_args()
    result: dict[str, Any] = {
        "bench": "fair_drain", "args": vars(args),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "load_before": os.getloadavg()},
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True,
                                 text=True, check=False).stdout.strip(),
        "kubeq": str(Path(kubeq.__file__).parent),
        "fetch_script_sha1": LUA["fetch"].sha,
        "shapes": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        (here / "fairdrain_tasks.py").write_text(TASKS)
        sys.path.insert(0, str(here))
        import fairdrain_tasks as t  # type: ignore[import-not-found]

        (here / "redis").mkdir()
        server = RedisServer(here / "redis")
        server.start()
        try:
            for shape in args.shapes.split(","):
                tenants = backlog(shape, args)
                only = [fetch_only(server.url, t.job, tenants, fair)
                        for _ in range(args.reps) for fair in (False, True)]  # fmt: skip
                entry: dict[str, Any] = {
                    "jobs": len(tenants),
                    "fetch_only": {
                        **summary(only, "redis_us_per_job", False),
                        "cpu": summary(only, "redis_cpu_us_per_job", False),
                        "runs": only,
                    },
                }
                if not args.skip_workers:
                    runs = [workers(server.url, here, t.job, tenants, fair, args)
                            for _ in range(args.reps) for fair in (False, True)]  # fmt: skip
                    entry["workers"] = {**summary(runs, "jobs_per_second", True), "runs": runs}
                result["shapes"][shape] = entry
                print(shape, json.dumps({k: v for k, v in entry.items() if k != "runs"}),
                      file=sys.stderr)  # fmt: skip
        finally:
            server.stop()
    result["host"]["load_after"] = os.getloadavg()
    out = HERE / "results" / f"fair-drain-{args.label}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"written: {out.relative_to(HERE.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main()
