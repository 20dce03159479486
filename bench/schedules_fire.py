"""The cost of firing 100,000 runtime schedules on one Redis, with two firers at once.

    .venv/bin/python bench/schedules_fire.py [--schedules 100000] [--batch 1000] \\
        [--label after --results bench/results/schedules-fire-DATE.json]
    .venv/bin/python bench/schedules_fire.py --render bench/results/schedules-fire-DATE.json

A private redis-server; N schedules written through the library's upsert script (pipelined),
then all made due at the same second (the worst case: a 09:00 burst of every customer's
digest), ``--lead`` seconds ahead so the firing starts at that second. Two firers (as two
operator replicas would, here two tasks on one event loop) run ``fire_due`` concurrently with
real enqueues. Prints one JSON line: the wall time of the writes and of the firing, schedules fired
per second, lag p50/p99 (seconds from the due time to the return of the enqueue that wrote the
run, on Redis' clock; the claim lag stops at the pass that claimed it), and the checks
that every due time was enqueued exactly once; ``--results`` appends it (with ``--label``, e.g.
"before" for a run at an export of the previous code on ``PYTHONPATH``) to a results file, and
``--render`` writes that file's table into docs/schedules.md between its
``<!-- schedules-fire results=... -->`` markers. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis
import redis.asyncio

import kubeq
from kubeq.options import Call
from kubeq.schedules import Schedule
from kubeq.store import schedulefire
from kubeq.store import schedules as store
from kubeq.store.keys import schedule_key, schedule_keys
from kubeq.testing.server import RedisServer


def write(url: str, n: int, lead: int) -> float:
    """Write ``n`` schedules, all due ``lead`` seconds after their writing ends (on Redis'
    clock), and wait for that second: the lag then counts none of the bench's own writes."""
    r = redis.Redis.from_url(url)
    t0 = time.perf_counter()
    for lo in range(0, n, 5000):
        defs = [
            Schedule(f"digest-{i:06}", "mail.digest", args=(i,), queue="digests", every=86400)
            for i in range(lo, min(n, lo + 5000))
        ]
        store.run(r, [store.upsert_call(s, "kubeq", None, None) for s in defs])
    took = time.perf_counter() - t0
    due = int(r.time()[0]) + lead
    for lo in range(0, n, 5000):
        pipe = r.pipeline(transaction=False)
        for i in range(lo, min(n, lo + 5000)):
            pipe.hset(schedule_key(f"digest-{i:06}"), "next", due)
            pipe.zadd(schedule_keys()[0], {f"digest-{i:06}": due})
        pipe.execute()
    if int(r.time()[0]) >= due:
        raise SystemExit(f"making the schedules due took over {lead} s: raise --lead")
    while int(r.time()[0]) < due:
        time.sleep(0.05)
    r.close()
    return took


def seconds(t: tuple[int, int]) -> float:
    return t[0] + t[1] / 1e6


async def firer(url: str, batch: int, lags: list[float]) -> schedulefire.Fired:
    """One firer; ``lags`` gets each run's seconds from its due time (in its job id) to the
    return of the enqueue that wrote it, on Redis' clock."""
    client = redis.asyncio.Redis.from_url(url)
    app = kubeq.App(url)

    async def enqueue(calls: list[Call]) -> None:
        await app.aenqueue_many(calls)
        now = seconds(await client.time())
        lags.extend(now - int(str(c.job_id).rsplit("-", 1)[1]) for c in calls)

    try:
        return await schedulefire.fire_due(client, "kubeq", enqueue, batch=batch, max_batches=10**6)
    finally:
        await client.aclose()


DOC = Path(__file__).resolve().parent.parent / "docs" / "schedules.md"
COLUMNS: tuple[tuple[str, str | tuple[str, str]], ...] = (
    ("code", "label"),
    ("schedules", "schedules"),
    ("batch", "batch"),
    ("writes (s)", "write_seconds"),
    ("firing (s)", "fire_seconds"),
    ("fired/s", "fired_per_second"),
    ("lag p50 (s)", "lag_p50_seconds"),
    ("lag p99 (s)", "lag_p99_seconds"),
    ("claim lag p50 / p99 (s)", ("claim_lag_p50_seconds", "claim_lag_p99_seconds")),
    ("per firer", "per_firer"),
    ("each due time once", "each_due_time_once"),
    ("load 1 min", "load"),
)


def render(results: str) -> None:
    """Write the results file's table into docs/schedules.md between its markers."""
    runs = json.loads(Path(results).read_text())
    rows = [
        "| " + " | ".join(h for h, _ in COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    for run in runs:
        cells = []
        for _, key in COLUMNS:
            v = [run.get(k) for k in key] if isinstance(key, tuple) else run.get(key)
            cells.append(
                " / ".join(f"{x:,}" for x in v)
                if isinstance(v, list)
                else f"{v:,}"
                if isinstance(v, int | float) and not isinstance(v, bool)
                else str(v)
            )
        rows.append("| " + " | ".join(cells) + " |")
    start, end = f"<!-- schedules-fire results={results} -->", "<!-- /schedules-fire -->"
    text = DOC.read_text()
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(head + start + "\n" + "\n".join(rows) + "\n" + end + tail)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedules", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--lead", type=int, default=30, help="seconds to write the due times in")
    ap.add_argument("--label", default="this tree")
    ap.add_argument("--results", default=None, help="append the run to this results file")
    ap.add_argument("--render", default=None, help="render this results file into the docs")
    a = ap.parse_args()
    if a.render:
        render(a.render)
        return
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            wrote = write(server.url, a.schedules, a.lead)
            lags: list[float] = []

            async def both() -> list[schedulefire.Fired]:
                return list(
                    await asyncio.gather(
                        firer(server.url, a.batch, lags), firer(server.url, a.batch, lags)
                    )
                )

            t0 = time.perf_counter()
            fired = asyncio.run(both())
            took = time.perf_counter() - t0
            ids = [r[2] for f in fired for r in f.runs]
            claim = sorted(x for f in fired for x in f.lag)
            lag = sorted(lags)
            backlog = kubeq.App(server.url).queue("digests").stats().backlog
        finally:
            server.stop()
    out = {
        "label": a.label,
        "schedules": a.schedules,
        "batch": a.batch,
        "write_seconds": round(wrote, 2),
        "fire_seconds": round(took, 2),
        "fired_per_second": round(len(ids) / took),
        "lag_p50_seconds": round(statistics.median(lag), 2) if lag else None,
        "lag_p99_seconds": round(lag[int(len(lag) * 0.99) - 1], 2) if lag else None,
        "claim_lag_p50_seconds": statistics.median(claim) if claim else None,
        "claim_lag_p99_seconds": claim[int(len(claim) * 0.99) - 1] if claim else None,
        "per_firer": [len(f.runs) for f in fired],
        "each_due_time_once": len(ids) == len(set(ids)) == a.schedules == backlog,
        "load": f"{load:.1f} -> {os.getloadavg()[0]:.1f}",
    }
    json.dump(out, sys.stdout)
    print()
    if a.results:
        path = Path(a.results)
        runs = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps([*runs, out], indent=1) + "\n")


if __name__ == "__main__":
    main()
