"""What the dashboard costs: Redis commands per second by open overview pages, and page load
times on a big Redis.

    .venv/bin/python bench/dashboard.py [--waiting 1000000] [--dead 100000] [--seconds 10]

Starts its own redis-server (no persistence) on a free loopback port and a real
``kubeq dashboard --read-only`` process against it, then:

1. Redis commands/s with 0, 1 and 50 open overview pages. A page is what a browser does: GET /
   and keep its /events stream open (server-sent events, ``?q=`` per queue on the page).
   Commands are counted with INFO commandstats (the bench's own INFO calls taken out) over
   ``--seconds``.
2. Page load times with ``--waiting`` jobs in one queue (enqueued through the library, in
   batches) and ``--dead`` dead letters in another (written in the shape dead.lua leaves:
   a job hash with status failed, reason, error, traceback, and the id in the dead ZSET; running
   100,000 failing jobs through a worker first would only slow the setup). Each page is timed
   over ``--repeat`` loads with httpx; the median and the worst are reported.

Writes bench/results/dashboard-<date>.json and prints a short table. Never run by `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import redis
from dashboard_scale import events_path

import kubeq
from kubeq.store.keys import QueueKeys
from kubeq.testing.server import free_port

ROOT = Path(__file__).resolve().parents[1]
KUBEQ = str(Path(sys.executable).with_name("kubeq"))


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server")
    if exe is None:
        sys.exit("redis-server is missing: `make redis-server` installs Debian's")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    sys.exit("redis-server did not start")


def start_dashboard(url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "KUBEQ_REDIS_URL": url, "KUBECONFIG": "/nonexistent"}
    env.pop("KUBEQ_DASHBOARD_TOKEN", None)
    proc = subprocess.Popen(
        [KUBEQ, "dashboard", "--read-only", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/healthz").status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    sys.exit("the dashboard did not start")


def commands(r: redis.Redis) -> tuple[int, int]:
    """(every command Redis ran, those inside Lua scripts included; EVALSHA calls)."""
    stats: dict[str, Any] = r.info("commandstats")  # type: ignore[assignment]
    total = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
    return total, int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def viewers(base: str, n: int, seconds: float, r: redis.Redis) -> dict[str, float]:
    """Open n overview pages for ``seconds``; Redis commands/s and messages per viewer."""
    received = [0] * n
    ready = asyncio.Event()
    opened = 0

    async def page(i: int) -> None:
        nonlocal opened
        async with httpx.AsyncClient(base_url=base, timeout=None) as c:
            page = (await c.get("/")).text
            async with c.stream("GET", events_path(page)) as stream:
                opened += 1
                if opened == n:
                    ready.set()
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        received[i] += 1

    tasks = [asyncio.create_task(page(i)) for i in range(n)]
    if n:
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.sleep(2)  # let every stream settle
    before, t0 = commands(r), time.monotonic()
    got_before = list(received)
    await asyncio.sleep(seconds)
    after, t1 = commands(r), time.monotonic()
    elapsed = t1 - t0
    got = [a - b for a, b in zip(received, got_before, strict=True)]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "viewers": n,
        "redis_commands_per_s": round((after[0] - before[0]) / elapsed, 1),
        "script_calls_per_s": round((after[1] - before[1]) / elapsed, 1),
        "messages_per_viewer_per_s": round(statistics.mean(got) / elapsed, 2) if n else 0.0,
    }


def seed(url: str, waiting: int, dead: int) -> dict[str, str]:
    app = kubeq.App(url)
    big = app.queue("big")
    t0 = time.monotonic()
    first = ""
    for start in range(0, waiting, 10_000):
        jobs = big.enqueue_many(
            big.prepare("bench.noop", i, "x" * 16)
            for i in range(start, min(waiting, start + 10_000))
        )
        first = first or jobs[0].id
    enqueue_s = time.monotonic() - t0
    keys = QueueKeys.of("failed", app.prefix)
    r = app.redis
    app.redis.sadd(f"{app.prefix}:queues", "failed")
    now = int(time.time() * 1000)
    tb = 'Traceback (most recent call last):\n  File "tasks.py", line 9\nKeyError: "sku"\n'
    last = ""
    for start in range(0, dead, 5_000):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(dead, start + 5_000)):
            jid = f"dead-{i:07d}"
            last = jid
            pipe.hset(
                keys.job(jid),
                mapping={
                    "status": "failed",
                    "payload": kubeq.serialization.encode_call(
                        "shop.charge" if i % 2 else "shop.refund", [i], {}, {}
                    ),
                    "priority": 5,
                    "attempts": 3,
                    "reason": "failed 3 of 3 attempts",
                    "error": 'KeyError: "sku"' if i % 10 else "TimeoutError: 30 s",
                    "traceback": tb,
                    "enqueued_at": now,
                    "finished_at": now,
                },
            )
            pipe.zadd(keys.dead, {jid: now - i})
        pipe.execute()
    return {"waiting_job": first, "dead_job": last, "enqueue_s": f"{enqueue_s:.1f}"}


def time_pages(base: str, paths: list[str], repeat: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=base, timeout=120) as c:
        for path in paths:
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                resp = c.get(path, follow_redirects=True)
                times.append(time.perf_counter() - t0)
                assert resp.status_code == 200, (path, resp.status_code)
            out[path] = {
                "median_ms": round(statistics.median(times) * 1000, 1),
                "max_ms": round(max(times) * 1000, 1),
                "bytes": len(resp.content),
            }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--waiting", type=int, default=1_000_000)
    p.add_argument("--dead", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rproc, url = start_redis(Path(tmp))
        dproc, base = start_dashboard(url)
        try:
            r = redis.Redis.from_url(url)
            app = kubeq.App(url)
            for q in ("emails", "reports", "thumbnails"):
                app.queue(q).enqueue("bench.noop", 1)
            load = [asyncio.run(viewers(base, n, args.seconds, r)) for n in (0, 1, 50)]
            seeded = seed(url, args.waiting, args.dead)
            paths = [
                "/",
                "/queues/big",
                f"/queues/big?page={args.waiting // 50 - 1}",
                "/dead?queue=failed",
                "/dead?queue=failed&task=shop.refund&reason=timeout",
                f"/dead?queue=failed&cursor={args.dead - 50}",
                f"/jobs?id={seeded['waiting_job']}",
                f"/jobs?id={seeded['dead_job']}",
                "/workers",
            ]
            pages = time_pages(base, paths, args.repeat)
            memory = r.info("memory")["used_memory_human"]  # type: ignore[index]
        finally:
            for proc in (dproc, rproc):
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "waiting": args.waiting,
        "dead": args.dead,
        "viewers": load,
        "pages": pages,
        "enqueue_seconds": float(seeded["enqueue_s"]),
        "redis_used_memory": memory,
    }
    out = Path(args.out) / f"dashboard-{result['date']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        "open overview pages -> Redis commands/s, in-script ones included (EVALSHA/s; msgs/page/s)"
    )
    for row in load:
        print(
            f"  {row['viewers']:>3} -> {row['redis_commands_per_s']:>7} "
            f"({row['script_calls_per_s']}; {row['messages_per_viewer_per_s']})"
        )
    print(f"page loads with {args.waiting:,} waiting and {args.dead:,} dead (median / max ms)")
    for path, t in pages.items():
        print(f"  {path:<60} {t['median_ms']:>8} / {t['max_ms']}")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
