"""Fair queues with real workers: one noisy tenant and many small ones, with and without keys.

    .venv/bin/python bench/fair_tenants.py [--noisy 100000] [--tenants 50] [--each 20]
        [--workers 2] [--concurrency 8]

On a throwaway redis-server: the noisy tenant's jobs are enqueued, then every small tenant's;
real `kubeq worker` processes drain them. Each job records its start (tenant, position) in
Redis. Run twice, alternated: without fairness keys, then with them (one key per tenant).
Prints one JSON line: per run, where the small tenants' last job started (position in the
start order and seconds after the small jobs were enqueued), the drain time and jobs/s, and
the ratio of fair to plain throughput. The bound fairness gives: with K + 1 keys with ready
jobs, a small tenant's j-th job is fetched within the first j x (K + 1) jobs
(docs/fairness.md); jobs start out of that order by at most what the other workers hold
(workers x (concurrency + a prefetch of at most 128)).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kubeq
from kubeq.testing.server import RedisServer

TASKS = """
import os
import kubeq
from kubeq.store.connections import sync_client

app = kubeq.App()
_r = None


@app.task(queue="tenants", max_attempts=1)
def job(tenant: str) -> None:
    global _r
    if _r is None:
        _r = sync_client(os.environ["KUBEQ_REDIS_URL"])
    _r.rpush("bench:starts", tenant)
    if tenant != "noisy":
        _r.incr("bench:small")
"""


def run(url: str, here: Path, args: argparse.Namespace, fair: bool) -> dict[str, object]:
    app = kubeq.App(url)
    app.redis.flushall()
    sys.path.insert(0, str(here))
    import fairbench_tasks as t

    def call(tenant: str) -> kubeq.Call:
        c = t.job.s(tenant)
        return c.set(fair_key=tenant) if fair else c

    app.enqueue_many(call("noisy") for _ in range(args.noisy))
    small = [f"t{i}" for i in range(args.tenants)]
    app.enqueue_many(call(s) for s in small for _ in range(args.each))
    t0 = time.monotonic()
    env = {**os.environ, "KUBEQ_REDIS_URL": url, "PYTHONPATH": str(here)}
    procs = [
        subprocess.Popen(
            [
                str(Path(sys.executable).with_name("kubeq")),
                "worker",
                "fairbench_tasks",
                "--queue",
                "tenants",
                "--concurrency",
                str(args.concurrency),
                "--burst",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(args.workers)
    ]
    total = args.noisy + args.tenants * args.each
    last_small_at = None
    while app.redis.llen("bench:starts") < total:
        if (
            last_small_at is None
            and int(app.redis.get("bench:small") or 0) == len(small) * args.each
        ):
            last_small_at = time.monotonic() - t0
        if all(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    drained = time.monotonic() - t0
    for p in procs:
        p.wait(60)
    starts = [v.decode() for v in app.redis.lrange("bench:starts", 0, -1)]
    positions = [i for i, v in enumerate(starts) if v != "noisy"]
    app.close()
    return {
        "fair": fair,
        "jobs": len(starts),
        "small_last_position": max(positions) if positions else None,
        "small_last_seconds": last_small_at,
        "bound_position": args.each * (args.tenants + 1) + args.workers * (args.concurrency + 128),
        "drain_seconds": round(drained, 2),
        "jobs_per_second": round(len(starts) / drained, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--noisy", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--each", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        (here / "fairbench_tasks.py").write_text(TASKS)
        server = RedisServer(here / "redis")
        (here / "redis").mkdir()
        server.start()
        try:
            runs = [run(server.url, here, args, fair) for fair in (False, True, False, True)]
        finally:
            server.stop()
    plain = [r["jobs_per_second"] for r in runs if not r["fair"]]
    fair = [r["jobs_per_second"] for r in runs if r["fair"]]
    ratio = (sum(fair) / len(fair)) / (sum(plain) / len(plain))  # type: ignore[arg-type]
    print(json.dumps({"args": vars(args), "runs": runs, "fair_over_plain": round(ratio, 3)}))


if __name__ == "__main__":
    main()
