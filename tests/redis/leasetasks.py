"""Tasks of tests/redis/test_late_heartbeat.py, run by real `kubeq worker leasetasks`
processes. Each records what it did in Redis under ``test:*`` keys (the test's own
namespace), with its start and end on the Redis server's clock."""

from __future__ import annotations

import asyncio
import os
import time

import redis

import kubeq

app = kubeq.App()
_r: redis.Redis | None = None


def r() -> redis.Redis:
    global _r
    if _r is None:
        _r = kubeq.store.connections.sync_client(os.environ["KUBEQ_REDIS_URL"])
    return _r


def _now_ms() -> int:
    sec, usec = r().time()
    return int(sec) * 1000 + int(usec) // 1000


def _wait_for(key: str) -> None:
    deadline = time.monotonic() + 120
    while not r().exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)


@app.task(max_attempts=3)
def progress_when_told(tag: str) -> str:
    """Runs until test:go:<tag> exists, then stores its progress and returns."""
    r().rpush(f"test:runs:{tag}", os.getpid())
    _wait_for(f"test:go:{tag}")
    kubeq.current_job(required=True).set_progress(100)
    return f"done {tag}"


@app.task(max_attempts=1, concurrency_limit=1, limit_key=lambda tag, name: "one")
def one_at_a_time(tag: str, name: str) -> str:
    """Under a limit of 1: records its span; the first one runs until test:go:<tag> exists."""
    r().rpush(f"test:span:{tag}", f"s {_now_ms()} {name}")
    if name == "first":
        _wait_for(f"test:go:{tag}")
    time.sleep(0.1)
    r().rpush(f"test:span:{tag}", f"e {_now_ms()} {name}")
    return name


@app.task(max_attempts=1, concurrency_limit=1, limit_key=lambda tag, name, seconds: "one")
def one_that_never_checks(tag: str, name: str, seconds: float) -> str:
    """Under a limit of 1, a thread task that never looks at current_job(): records its span."""
    r().rpush(f"test:span:{tag}", f"s {_now_ms()} {name}")
    time.sleep(seconds)
    r().rpush(f"test:span:{tag}", f"e {_now_ms()} {name}")
    return name


@app.task(max_attempts=1)
async def sleeps_async(tag: str, seconds: float) -> str:
    """Records its start, sleeps, records that it ran to its end (or that it was cancelled)."""
    r().rpush(f"test:started:{tag}", 1)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        r().rpush(f"test:cancelled:{tag}", 1)
        raise
    r().rpush(f"test:ended:{tag}", 1)
    return tag
