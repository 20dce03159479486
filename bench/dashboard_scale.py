"""What the dashboard costs as queue names pile up: Redis commands per second and page size
with 10, 1,000 and 10,000 registered queues, while one overview page is open.

    .venv/bin/python bench/dashboard_scale.py [--sizes 10,1000,10000] [--seconds 5]
    .venv/bin/python bench/dashboard_scale.py --src ../main/src --label before

For each size, twice: every name a queue holding one waiting job ("live"), and every name
registered but holding nothing ("empty", the leftovers of tests and renamed queues). Each
case starts its own redis-server (no persistence, loopback) and a fresh
``kubeq dashboard --read-only`` process, then:

1. GET / (bytes, time, Redis commands): the first overview page, and the Redis commands of
   a second render right after (what is known about each name is kept a while);
2. one open page for ``--seconds``: GET / and its /events stream, opened as the page's
   script opens it (``?q=`` per queue on the page); Redis commands per second counted with
   INFO commandstats deltas (commands run inside scripts included, the bench's own INFO
   calls left out), stats-script calls per second, messages and bytes per second;
3. GET / again (bytes: the chart history embedded after the page was open), and the
   dashboard's RSS (VmRSS).

``--src`` runs the dashboard from another checkout's ``src`` (PYTHONPATH), for the figures
before a change; ``--label`` names the run in the results file. Every case is bounded:
``--seconds`` of viewing plus the seeding (10,000 queues enqueue in a few seconds).
Writes bench/results/dashboard-scale-<date>[-label].json. Never run by `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import redis

import kubeq
from kubeq import defaults
from kubeq.client.app import Call
from kubeq.testing.server import RedisServer, free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]
KUBEQ = str(Path(sys.executable).with_name("kubeq"))


def start(cmd: list[str], env: dict[str, str], ready: Any, what: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if ready():
                return proc
        except (redis.ConnectionError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"{what} did not start")


def events_path(page: str) -> str:
    """The /events URL the overview's script opens: one ``q=`` per queue on the page (a
    dashboard from before paging lists every queue and reads none of them from the URL)."""
    names = list(dict.fromkeys(re.findall(r'data-q="([^"]+)"', page)))
    names = names[: defaults.DASHBOARD_QUEUES_PAGE]
    return "/events" + (f"?{urlencode([('q', n) for n in names])}" if names else "")


def commands(r: redis.Redis) -> tuple[int, int]:
    """(every command Redis ran, inside scripts included, but INFO; EVALSHA calls)."""
    stats: dict[str, Any] = r.info("commandstats")  # type: ignore[assignment]
    total = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
    return total, int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def seed(url: str, n: int, kind: str) -> None:
    app = kubeq.App(url)
    names = [f"q-{i:05d}" for i in range(n)]
    if kind == "empty":
        app.redis.sadd(f"{app.prefix}:queues", *names)
        return
    for start_ in range(0, n, 2_000):
        app.enqueue_many(
            Call("bench.noop", (1,), {}, queue=q) for q in names[start_ : start_ + 2_000]
        )


async def view(base: str, seconds: float, r: redis.Redis) -> dict[str, Any]:
    """One open overview page for ``seconds``: what it costs Redis and what it receives."""
    got = {"messages": 0, "bytes": 0}
    opened = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=None) as c:
        page = (await c.get("/")).text

        async def listen() -> None:
            async with c.stream("GET", events_path(page)) as stream:
                opened.set()
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        got["messages"] += 1
                        got["bytes"] += len(line)

        task = asyncio.create_task(listen())
        await asyncio.wait_for(opened.wait(), 60)
        await asyncio.sleep(1.5)  # the first poll and message
        before, seen, t0 = commands(r), dict(got), time.monotonic()
        await asyncio.sleep(seconds)
        after, elapsed = commands(r), time.monotonic() - t0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return {
        "redis_commands_per_s": round((after[0] - before[0]) / elapsed, 1),
        "script_calls_per_s": round((after[1] - before[1]) / elapsed, 1),
        "messages_per_s": round((got["messages"] - seen["messages"]) / elapsed, 2),
        "event_bytes_per_s": round((got["bytes"] - seen["bytes"]) / elapsed),
    }


def case(n: int, kind: str, seconds: float, src: str | None, tmp: Path) -> dict[str, Any]:
    server = RedisServer(tmp / "redis")
    server.start()
    url = server.url
    r = redis.Redis.from_url(url)
    dproc = None
    try:
        seed(url, n, kind)
        dport = free_port()
        env = {**os.environ, "KUBEQ_REDIS_URL": url, "KUBECONFIG": "/nonexistent"}
        env.pop("KUBEQ_DASHBOARD_TOKEN", None)
        if src:
            env["PYTHONPATH"] = str(Path(src).resolve())
        base = f"http://127.0.0.1:{dport}"
        dproc = start(
            [KUBEQ, "dashboard", "--read-only", "--port", str(dport)],
            env,
            lambda: httpx.get(base + "/healthz").status_code == 200,
            "the dashboard",
        )
        rss_start = rss_mib(dproc.pid)
        with httpx.Client(base_url=base, timeout=120) as c:
            before, t0 = commands(r)[0], time.perf_counter()
            first = c.get("/")
            first_ms = (time.perf_counter() - t0) * 1000
            first_cmds = commands(r)[0] - before
            again = c.get("/")
            again_cmds = commands(r)[0] - before - first_cmds
            assert again.status_code == first.status_code == 200
        viewed = asyncio.run(view(base, seconds, r))
        with httpx.Client(base_url=base, timeout=120) as c:
            later = c.get("/")
        return {
            "queues": n,
            "kind": kind,
            "overview_bytes_first": len(first.content),
            "overview_ms_first": round(first_ms, 1),
            "overview_rows": len(re.findall(r"<tr data-row=", first.text)),
            "redis_commands_first_render": first_cmds,
            "redis_commands_next_render": again_cmds,
            **viewed,
            "overview_bytes_after_viewing": len(later.content),
            "dashboard_rss_mib_start": rss_start,
            "dashboard_rss_mib_end": rss_mib(dproc.pid),
        }
    finally:
        stop_process(dproc, 30)
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="10,1000,10000")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--src", default=None, help="run the dashboard from this src directory")
    p.add_argument("--label", default="")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            for kind in ("live", "empty"):
                row = case(n, kind, args.seconds, args.src, Path(tmp))
                rows.append(row)
                print(
                    f"{n:>6} {kind:<5} page {row['overview_bytes_first']:>9} B "
                    f"({row['overview_rows']} rows) -> {row['overview_bytes_after_viewing']:>9} B"
                    f" | Redis {row['redis_commands_per_s']:>9}/s, scripts "
                    f"{row['script_calls_per_s']:>7}/s | events {row['event_bytes_per_s']:>8} B/s"
                    f" | RSS {row['dashboard_rss_mib_start']} -> "
                    f"{row['dashboard_rss_mib_end']} MiB",
                    flush=True,
                )
    date = time.strftime("%Y-%m-%d")
    result = {
        "date": date,
        "label": args.label or "current",
        "machine": f"{os.cpu_count()} cores, shared with other builds",
        "seconds_viewed": args.seconds,
        "cases": rows,
    }
    suffix = f"-{args.label}" if args.label else ""
    out = Path(args.out) / f"dashboard-scale-{date}{suffix}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
