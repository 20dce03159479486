"""Fair queues at the issue's scale, with real workers: a noisy tenant, then 3:1 weights.

    .venv/bin/python bench/fair_tenants.py [--noisy 100000] [--tenants 50] [--each 20]
        [--workers 2] [--concurrency 8] [--minute 60] [--label NAME]

On a throwaway redis-server, real `kubeq worker` processes started on the paused queue, which
is then resumed (start-up is not counted). Each job records its start in Redis.

1. **A noisy tenant.** One tenant's ``--noisy`` jobs are enqueued, then ``--tenants`` small
   tenants' ``--each`` each; drained once without keys and once with one key per tenant.
   Reported: where the small tenants' last job started (place in the start order, seconds
   after the resume) and the drain's jobs/s. The bound fairness gives (docs/fairness.md):
   with K + 1 keys with ready jobs, a small tenant's j-th job is fetched within the first
   j x (K + 1) jobs, so the last small job within ``each x (tenants + 1)``; jobs start out of
   fetch order by at most what the workers hold (workers x (concurrency + a prefetch of at
   most 128)). In seconds: that many jobs at the drain's rate.
2. **A busy minute at 3:1.** Tenants ``a`` (weight 3) and ``b`` (weight 1), each with more
   jobs of 50 ms than the workers can start in ``--minute`` seconds (a and b both always have
   ready jobs); after a 5 s warm-up, the starts of each in the next ``--minute`` seconds. The
   issue asks for a measured share within 5 % of 3:1.

Writes bench/results/fair-tenants-<label>.json and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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
def job(tenant: str, pause: float = 0.0) -> None:
    global _r
    if _r is None:
        _r = sync_client(os.environ["KUBEQ_REDIS_URL"])
    n = _r.rpush("bench:starts", tenant)
    if tenant.startswith("t") and _r.incr("bench:small") == int(os.environ["BENCH_SMALL"]):
        _r.set("bench:small_at", repr(time.time()))
    if n == int(os.environ["BENCH_TOTAL"]):
        _r.set("bench:t1", repr(time.time()))
    if pause:
        time.sleep(pause)
"""


@contextlib.contextmanager
def workers(url: str, here: Path, args: argparse.Namespace, env: dict[str, str]) -> Iterator[float]:
    """Worker processes started on the paused queue; yields the time of the resume."""
    r = kubeq.App(url).redis
    path = os.pathsep.join(p for p in (str(here), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "KUBEQ_REDIS_URL": url, "PYTHONPATH": path, **env}
    command = [str(Path(sys.executable).with_name("kubeq")), "worker", "fairtenants_tasks",
               "--queue", QUEUE, "--concurrency", str(args.concurrency)]  # fmt: skip
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
        t0 = time.time()
        r.delete(keys.paused)
        r.rpush(keys.wake, *["1"] * args.workers)
        yield t0
    finally:
        for p in procs:
            stop_process(p, grace=30)
        r.close()


def wait_for(r: Any, key: str, seconds: float) -> float:
    deadline = time.monotonic() + seconds
    while (v := r.get(key)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{key} was not set in {seconds} s")
        time.sleep(0.05)
    return float(v)


def noisy(url: str, here: Path, args: argparse.Namespace, task: Any, fair: bool) -> dict[str, Any]:
    app = kubeq.App(url)
    app.redis.flushall()
    app.queue(QUEUE).pause()

    def call(tenant: str) -> kubeq.Call:
        c = task.s(tenant)
        return c.set(fair_key=tenant) if fair else c

    app.enqueue_many(call("noisy") for _ in range(args.noisy))
    small = [f"t{i}" for i in range(args.tenants)]
    app.enqueue_many(call(s) for s in small for _ in range(args.each))
    total = args.noisy + len(small) * args.each
    env = {"BENCH_TOTAL": str(total), "BENCH_SMALL": str(len(small) * args.each)}
    with workers(url, here, args, env) as t0:
        small_at = wait_for(app.redis, "bench:small_at", 3600) - t0
        t1 = wait_for(app.redis, "bench:t1", 3600) - t0
    starts = [v.decode() for v in app.redis.lrange("bench:starts", 0, -1)]
    app.close()
    last = max(i for i, v in enumerate(starts) if v != "noisy")
    rate = total / t1
    bound = args.each * (args.tenants + 1) + args.workers * (args.concurrency + 128)
    return {
        "fair": fair,
        "jobs": len(starts),
        "small_last_place": last + 1,
        "small_last_seconds": round(small_at, 2),
        "bound_place": bound,
        "bound_seconds": round(bound / rate, 2),
        "within_bound": last + 1 <= bound,
        "drain_seconds": round(t1, 2),
        "jobs_per_second": round(rate, 1),
    }


def minute(url: str, here: Path, args: argparse.Namespace, task: Any) -> dict[str, Any]:
    app = kubeq.App(url)
    app.redis.flushall()
    q = app.queue(QUEUE)
    q.pause()
    q.set_weights({"a": 3, "b": 1})
    slots_rate = args.workers * args.concurrency / 0.05  # starts/s at most
    seconds = args.minute + 5 + 30  # warm-up, the minute, and room to spare
    na, nb = int(slots_rate * seconds * 0.75) + 1000, int(slots_rate * seconds * 0.25) + 1000
    app.enqueue_many(task.s("a", 0.05).set(fair_key="a") for _ in range(na))
    app.enqueue_many(task.s("b", 0.05).set(fair_key="b") for _ in range(nb))
    r = app.redis
    with workers(url, here, args, {"BENCH_TOTAL": "0", "BENCH_SMALL": "0"}) as t0:
        time.sleep(max(0.0, t0 + 5 - time.time()))
        before = r.llen("bench:starts")
        w0 = time.time()
        time.sleep(args.minute)
        after = r.llen("bench:starts")
        w1 = time.time()
        window = [v.decode() for v in r.lrange("bench:starts", before, after - 1)]
        left = {k: r.zcard(QueueKeys.of(QUEUE).base + f"fair:q:{k}") for k in ("a", "b")}
    app.close()
    da, db = window.count("a"), window.count("b")
    share = da / db if db else float("inf")
    return {
        "weights": {"a": 3, "b": 1},
        "enqueued": {"a": na, "b": nb},
        "window_seconds": round(w1 - w0, 2),
        "starts": {"a": da, "b": db},
        "ready_left_after": left,
        "share_a_over_b": round(share, 3),
        "off_3_to_1_percent": round(abs(share - 3) / 3 * 100, 2),
        "within_5_percent": abs(share - 3) <= 0.15,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--noisy", type=int, default=100_000)
    ap.add_argument("--tenants", type=int, default=50)
    ap.add_argument("--each", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--minute", type=float, default=60.0)
    ap.add_argument("--label", default=datetime.now(UTC).strftime("%Y-%m-%d"))
    args = ap.parse_args()
    result: dict[str, Any] = {
        "bench": "fair_tenants", "args": vars(args),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "load_before": os.getloadavg()},
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True,
                                 text=True, check=False).stdout.strip(),
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        (here / "fairtenants_tasks.py").write_text(TASKS)
        sys.path.insert(0, str(here))
        import fairtenants_tasks as t  # type: ignore[import-not-found]

        (here / "redis").mkdir()
        server = RedisServer(here / "redis")
        server.start()
        try:
            result["noisy_tenant"] = [
                noisy(server.url, here, args, t.job, f) for f in (False, True)
            ]
            print(json.dumps(result["noisy_tenant"]), file=sys.stderr)
            result["busy_minute"] = minute(server.url, here, args, t.job)
        finally:
            server.stop()
    result["host"]["load_after"] = os.getloadavg()
    out = HERE / "results" / f"fair-tenants-{args.label}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"written: {out.relative_to(HERE.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main()
