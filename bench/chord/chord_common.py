"""What both sides of the chord benchmark share: the Redis URL and the two timing writes.

Each member records its start time (one RPUSH) and the callback its own start and what it
received (one RPUSH); ``measure`` subtracts exactly these, and its own BLPOP and INFO, from
the server's counters, so what remains is the library's own traffic for the chord.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

STARTS, DONE = "bench:chord:starts", "bench:chord:done"
_client: redis.Redis | None = None


def url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def r() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(url())
    return _client


def record_start() -> None:
    r().rpush(STARTS, f"{time.time():.6f}")


def record_done(results: list[int]) -> None:
    r().rpush(DONE, json.dumps([time.time(), len(results), sum(results)]))


def _counters(client: redis.Redis) -> tuple[int, int]:
    stats = client.info("stats")
    return int(stats["total_reads_processed"]), int(stats["total_commands_processed"])


def measure(system: Any, n: int, reps: int) -> dict[str, Any]:
    """Start ``system``'s worker, run one warm-up chord, then ``reps`` chords of ``n``."""
    here = Path(__file__).resolve().parent
    harness = redis.Redis.from_url(url())
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name(system.WORKER[0])), *system.WORKER[1:]],
        cwd=here,
        env={**os.environ, "PYTHONPATH": str(here), "KUBEQ_REDIS_URL": url()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        runs = []
        for rep in range(reps + 1):  # rep 0 warms up: imports, connections, scripts loaded
            harness.delete(STARTS, DONE)
            time.sleep(0.5)  # the worker idle again
            reads0, cmds0 = _counters(harness)
            sent = time.time()
            system.start(n if rep else 2)
            got = harness.blpop([DONE], timeout=120)
            reads1, cmds1 = _counters(harness)
            if got is None:
                raise SystemExit(f"{system.__name__}: no callback within 120 s")
            called, length, total = json.loads(got[1])
            size = n if rep else 2
            if (length, total) != (size, size * (size - 1) // 2):
                raise SystemExit(f"{system.__name__}: the callback got {length} results")
            if rep == 0:
                continue
            starts = sorted(float(t) for t in harness.lrange(STARTS, 0, -1))
            own = n + 1  # the timing RPUSHes
            runs.append(
                {
                    "redis_reads": reads1 - reads0 - own - 2,  # and this BLPOP and INFO
                    "redis_commands": cmds1 - cmds0 - own - 1,  # and this BLPOP
                    "first_start_to_callback_ms": (called - starts[0]) * 1000,
                    "enqueue_to_callback_ms": (called - sent) * 1000,
                    "member_starts": len(starts),
                }
            )
        idle0 = _counters(harness)
        time.sleep(2.0)
        idle1 = _counters(harness)
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
        system.close()
    out: dict[str, Any] = {"how": system.HOW, "n": n, "runs": runs}
    for key in ("redis_reads", "redis_commands", "first_start_to_callback_ms"):
        out[key] = statistics.median(run[key] for run in runs)
    out["idle_reads_per_s"] = (idle1[0] - idle0[0] - 1) / 2.0
    return out


if __name__ == "__main__":
    # python chord_common.py SYSTEM N REPS: one system's figures as one JSON line
    import importlib

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    module = importlib.import_module(f"chord_{sys.argv[1]}")
    print(json.dumps(measure(module, int(sys.argv[2]), int(sys.argv[3]))), flush=True)
