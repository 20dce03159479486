"""The flow patterns' promises at scale, with real workers (docs/patterns.md).

    .venv/bin/python bench/flow_patterns.py [--calls 10000] [--keys 100] [--callers 50]
        [--items-per-second 5000] [--seconds 10] [--producers 1]
        [--only debounce singleton batches] [--out bench/results/flow-patterns-DATE.json]

On a throwaway redis-server, three runs, each checked, each reported in one JSON file:
- debounce: ``--calls`` calls over ``--keys`` keys (1 s debounce) sent as fast as the client
  goes; then real workers: every key must run once, with its last call's arguments;
- singleton: ``--callers`` threads call a keep_latest task and a skip task (runs of 0.2 s)
  over ten keys while two workers run them; one worker is SIGKILLed mid-run. No two runs of
  one key may overlap (an attempt counts until it ended or its lease lapsed), and each
  key's last run has its newest call's arguments (keep_latest);
- batches: a steady ``--items-per-second`` items for ``--seconds`` (sent by ``--producers``
  processes, each its share in chunks of a twentieth of a second, one ``enqueue_many``
  each) into a Batch(500, 2.0) task, three workers of one batch at a time; the one in the
  first batch is SIGKILLed there (and a replacement started): every item must be recorded
  done once, and the batch that was killed must start again with exactly its items (no
  other batch twice). The rate reached (overall and each second), batch sizes and waits
  (from each batch's result) are reported.
Exit status 1 when a promise fails; the file says which.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import kubeq
from kubeq.testing.server import RedisServer

PARTS = ("debounce", "singleton", "batches")


class Fleet:
    """Real `kubeq worker` processes of the bench's tasks."""

    def __init__(self, url: str, here: Path) -> None:
        self.env = {**os.environ, "KUBEQ_REDIS_URL": url, "PYTHONPATH": str(here)}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, n: int, *args: str) -> None:
        kubeq_bin = str(Path(sys.executable).with_name("kubeq"))
        for _ in range(n):
            cmd = [kubeq_bin, "worker", "flowbench_tasks", "--queue", "flow", *args]
            self.procs.append(
                subprocess.Popen(
                    cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(30)
        self.procs = []


def wait(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {seconds} s for {what}")
        time.sleep(0.05)


def debounce(app: kubeq.App, fleet: Fleet, t: Any, calls: int, keys: int) -> dict[str, Any]:
    rng = random.Random(1)
    order = [f"k{rng.randrange(keys)}" for _ in range(calls)]
    last: dict[str, int] = {}
    t0 = time.monotonic()
    for start in range(0, calls, 100):
        chunk = []
        for i in range(start, min(start + 100, calls)):
            last[order[i]] = i
            chunk.append(t.reindex.s(order[i], i))
        app.enqueue_many(chunk)
    sent = time.monotonic() - t0
    fleet.start(2, "--concurrency", "16")
    wait(lambda: app.redis.llen("bench:debounce") >= len(last), 120, "every key to run")
    time.sleep(1.5)  # a run too many would come within the window (1 s)
    runs = [v.decode().split() for v in app.redis.lrange("bench:debounce", 0, -1)]
    fleet.stop()
    by_key: dict[str, list[int]] = {}
    for key, n in runs:
        by_key.setdefault(key, []).append(int(n))
    wrong = sorted(k for k, ns in by_key.items() if ns != [last[k]])
    return {
        "calls": calls,
        "keys": len(last),
        "send_seconds": round(sent, 2),
        "calls_per_second": round(calls / sent),
        "runs": len(runs),
        "keys_run_once_with_last_arguments": len(last) - len(wrong),
        "wrong": wrong[:10],
        "ok": not wrong and len(runs) == len(last),
    }


def singleton(app: kubeq.App, fleet: Fleet, t: Any, callers: int) -> dict[str, Any]:
    fleet.start(2, "--concurrency", "8", "--lease", "3")
    newest: dict[tuple[str, str], int] = {}
    lock = threading.Lock()
    counter = iter(range(10**9))

    def caller(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            key = f"k{rng.randrange(10)}"
            if rng.random() < 0.5:  # skip: sent at once, from every thread
                app.enqueue_many([t.skip.s(key, next(counter), 0.2)])
            else:  # keep_latest: in a known order, to know each key's newest call
                with lock:
                    n = next(counter)
                    app.enqueue_many([t.latest.s(key, n, 0.2)])
                    newest[("keep_latest", key)] = n
            time.sleep(rng.random() * 0.1)

    queue = app.queue("flow")
    wait(lambda: queue.stats().live_workers == 2, 60, "both workers to start")
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for th in threads:
        th.start()
    found: list[int] = []

    def running() -> bool:  # a worker in a run now: a start without its end
        ends: set[tuple[bytes, ...]] = set()
        for v in reversed(app.redis.lrange("bench:spans", 0, -1)):
            kind, *rest = v.split()
            if kind == b"e":
                ends.add(tuple(rest[:4]))
            elif tuple(rest[:4]) not in ends:
                found.append(int(rest[3]))
                return True
        return False

    wait(running, 60, "a run in progress")
    victim = found[-1]
    fleet.kill(victim)  # mid-run: its attempts hold their keys until their leases lapse
    killed_at = time.time()
    for th in threads:
        th.join()
    wait(
        lambda: queue.stats().singleton_keys == 0 and queue.stats().backlog == 0,
        180,
        "every singleton job to end",
    )
    spans = [v.decode().split() for v in app.redis.lrange("bench:spans", 0, -1)]
    fleet.stop()
    open_at: dict[tuple[str, str, str, str], float] = {}
    intervals: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    for kind, mode, key, n, pid, at in spans:
        if kind == "s":
            open_at[(mode, key, n, pid)] = float(at)
        else:
            begun = open_at.pop((mode, key, n, pid))
            intervals.setdefault((mode, key), []).append((begun, float(at), int(n)))
    mid_run = any(int(pid) == victim for (_, _, _, pid) in open_at)
    for (mode, key, n, pid), begun in open_at.items():  # the killed worker's: until its kill
        end = killed_at if int(pid) == victim else time.time()
        intervals.setdefault((mode, key), []).append((begun, end, int(n)))
    overlaps = 0
    stale_last = []
    for (mode, key), spans_of in intervals.items():
        spans_of.sort()
        for (_, end, _), (start, _, _) in itertools.pairwise(spans_of):
            overlaps += start < end - 0.01  # clocks of one machine
        last_n = max(spans_of, key=lambda s: s[1])[2]
        if mode == "keep_latest" and last_n != newest.get((mode, key), last_n):
            stale_last.append(f"{key}: ran {last_n}, newest {newest[(mode, key)]}")
    return {
        "callers": callers,
        "calls": next(counter),
        "runs": sum(len(v) for v in intervals.values()),
        "worker_killed_mid_run": mid_run,
        "overlapping_runs_of_a_key": overlaps,
        "keep_latest_keys_whose_last_run_is_not_the_newest_call": stale_last,
        "ok": overlaps == 0 and not stale_last and mid_run,
    }


def batches(
    app: kubeq.App, fleet: Fleet, t: Any, per_second: int, seconds: float, producers: int
) -> dict[str, Any]:
    worker = ("--concurrency", "1", "--lease", "3")  # one batch at a time each
    fleet.start(3, *worker)
    total = int(per_second * seconds)
    killed: list[float] = []

    def killer() -> None:  # SIGKILL the first batch's worker as soon as it is in the task
        wait(lambda: app.redis.get("bench:victim") is not None, 120, "the first batch")
        fleet.kill(int(app.redis.get("bench:victim") or 0))
        killed.append(time.monotonic())
        fleet.start(1, *worker)  # its replacement, as a Deployment would start one

    watcher = threading.Thread(target=killer)
    watcher.start()
    procs = [  # processes, each its share of the rate
        subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--produce",
                f"{p},{producers},{total},{per_second}",
            ],
            env=fleet.env,
        )
        for p in range(producers)
    ]
    wait(lambda: app.redis.llen("bench:ready") == producers, 120, "the producers to connect")
    start_at = time.time() + 0.5  # the clock starts for all of them at once
    app.redis.set("bench:start", repr(start_at))
    for proc in procs:
        proc.wait()
    watcher.join()
    wait(lambda: app.redis.llen("bench:done") >= total, 300, "every item to be done")
    drained = time.time()
    time.sleep(0.5)  # an item done twice would be recorded by now
    done = [int(v) for v in app.redis.lrange("bench:done", 0, -1)]
    starts = [tuple(json.loads(v)) for v in app.redis.lrange("bench:starts", 0, -1)]
    carriers = app.redis.zrange("kubeq:{flow}:batches", 0, -1)  # every batch opened
    results = [app.job(c.decode(), "flow").result(timeout=60) for c in carriers]
    fleet.stop()
    sent = [[float(x) for x in v.split()] for v in app.redis.lrange("bench:sent", 0, -1)]
    last_sent = max(at for at, _, _ in sent)
    per_second_sent = [0] * (int(last_sent - start_at) + 1)
    for at, n, _ in sent:
        per_second_sent[int(at - start_at)] += int(n)
    twice = [s for s in set(starts) if starts.count(s) > 1]
    sizes = [r["items"] for r in results]
    waits = sorted(r["waited_ms"] for r in results)
    return {
        "items": total,
        "producers": producers,
        "send_seconds": round(last_sent - start_at, 2),
        "items_per_second_sent": round(total / (last_sent - start_at)),
        "items_sent_each_second": per_second_sent,
        "producer_behind_schedule_ms_max": round(max(late for _, _, late in sent)),
        "seconds_from_last_sent_to_all_done": round(drained - last_sent, 2),
        "batches": len(results),
        "full_batches": sizes.count(500),
        "batch_size": {
            "min": min(sizes),
            "mean": round(sum(sizes) / len(sizes), 1),
            "max": max(sizes),
        },
        "waited_ms": {
            "min": waits[0],
            "p50": waits[len(waits) // 2],
            "p95": waits[int(len(waits) * 0.95)],
            "mean": round(sum(waits) / len(waits)),
            "max": waits[-1],
        },
        "items_done_once": len(set(done)) if len(done) == len(set(done)) else None,
        "items_done_twice": len(done) - len(set(done)),
        "batches_started_twice": len(twice),
        "the_killed_batch_items": len(twice[0]) if twice else 0,
        "ok": sorted(done) == list(range(total))
        and len(twice) == 1
        and all(len(set(s) & set(twice[0])) == 0 for s in set(starts) if s != twice[0]),
    }


def produce(spec: str) -> None:
    """One producer process: items ``p``, ``p + n``, ... below ``total`` at its share of the
    rate from the time in ``bench:start`` (set once every producer is ready), one
    ``enqueue_many`` (a few batch.lua calls, one round trip) a twentieth of a second; each
    chunk's send time, size and lateness (ms behind its schedule) go to ``bench:sent``."""
    p, n, total, per_second = spec.split(",")
    import flowbench_tasks as t

    mine = list(range(int(p), int(total), int(n)))
    rate = int(per_second) / int(n)
    chunk = max(1, int(rate // 20))
    t.app.redis.rpush("bench:ready", p)  # imported and connected: the clock may start
    wait(lambda: t.app.redis.exists("bench:start"), 120, "the start")
    t0 = float(t.app.redis.get("bench:start") or 0)
    time.sleep(max(0.0, t0 - time.time()))
    for start in range(0, len(mine), chunk):
        due = t0 + start / rate
        late = max(0.0, time.time() - due) * 1000
        t.app.enqueue_many([t.insert.s(i) for i in mine[start : start + chunk]])
        now = time.time()
        t.app.redis.rpush("bench:sent", f"{now} {len(mine[start : start + chunk])} {late}")
        ahead = t0 + (start + chunk) / rate - now
        if ahead > 0:
            time.sleep(ahead)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--items-per-second", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--producers", type=int, default=1, help="Processes sending items.")
    parser.add_argument("--produce", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--only", nargs="+", choices=PARTS, default=list(PARTS), help="The runs to do."
    )
    args = parser.parse_args()
    if args.produce:
        produce(args.produce)
        return
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)  # the tasks' module alone on the workers' path
        tasks = Path(__file__).resolve().with_name("flowbench_tasks.py")
        (here / "flowbench_tasks.py").write_text(tasks.read_text())
        (here / "redis").mkdir()
        server = RedisServer(here / "redis")
        server.start()
        os.environ["KUBEQ_REDIS_URL"] = server.url
        sys.path.insert(0, str(here))
        import flowbench_tasks as t

        app = t.app  # it knows the tasks' options (debounce, singleton, batch)
        fleet = Fleet(server.url, here)
        try:
            for name, run in (
                ("debounce", lambda: debounce(app, fleet, t, args.calls, args.keys)),
                ("singleton", lambda: singleton(app, fleet, t, args.callers)),
                (
                    "batches",
                    lambda: batches(
                        app, fleet, t, args.items_per_second, args.seconds, args.producers
                    ),
                ),
            ):
                if name not in args.only:
                    continue
                app.redis.flushall()
                report[name] = run()
        finally:
            fleet.stop()
            app.close()
            server.stop()
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    sys.exit(0 if all(report[k]["ok"] for k in args.only) else 1)


if __name__ == "__main__":
    main()
