"""Tasks the redis-tier tests run in real worker processes (imported as `qtasks`), with the
job-context and workflow tasks of qtasks_more.py, registered under the same `qtasks.` names."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import time
from typing import Any

from pintasks import *  # noqa: F403 - its tasks are qtasks.<name> (pintasks.__all__)
from qapp import app, r
from qtasks_more import *  # noqa: F403 - its tasks are qtasks.<name> (qtasks_more.__all__)

import kubeq


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
async def async_add(x: int, y: int) -> int:
    await asyncio.sleep(0.01)
    return x + y


@app.task(pool="process")
def cpu_pid() -> int:
    return os.getpid()


@app.task
def worker_pid() -> int:
    return os.getpid()


@app.task
def frozen_objects() -> int:
    """How many objects the worker process running it keeps out of garbage collection."""
    return gc.get_freeze_count()


@app.task
def modules_loaded() -> list[str]:
    """Every module the worker process running it has imported."""
    return sorted(sys.modules)


@app.task(max_attempts=1)
def run_and_record(tag: str, seconds: float) -> int:
    """Record a start, sleep, record an end; returns this worker's pid."""
    r().rpush(f"test:started:{tag}", os.getpid())
    time.sleep(seconds)
    r().rpush(f"test:ended:{tag}", os.getpid())
    return os.getpid()


@app.task
def record_order(tag: str, value: Any) -> None:
    r().rpush(f"test:order:{tag}", value)


@app.task(max_attempts=3, backoff_min=0.05, backoff_max=0.1)
def fail_until(tag: str, failures: int) -> int:
    n = int(r().incr(f"test:calls:{tag}"))
    if n <= failures:
        raise ConnectionError(f"transient failure {n}")
    return n


@app.task(max_attempts=2, backoff_min=0.05, backoff_max=0.1)
def always_fail() -> None:
    raise ValueError("this task always fails")


@app.task(max_attempts=5, retry_on=(ConnectionError,))
def not_retried() -> None:
    raise KeyError("not a retryable error")


@app.task(max_attempts=3)
def explicit_retry(tag: str) -> int:
    n = int(r().incr(f"test:calls:{tag}"))
    if n == 1:
        raise kubeq.Retry(delay=0.1)
    return n


@app.task(max_attempts=1, timeout=0.3)
def too_slow() -> None:
    time.sleep(3)


@app.task
def returns_a_set() -> Any:
    return {1, 2}


@app.task(max_deliveries=2)
def kill_my_worker() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(max_attempts=1)
def soak(i: int) -> int:
    r().hincrby("test:soak:runs", str(i), 1)
    time.sleep(0.002)
    return i * 2


@app.task(max_attempts=3)
def retry_with_timedelta(tag: str) -> int:
    from datetime import timedelta

    n = int(r().incr(f"test:calls:{tag}"))
    if n == 1:
        raise kubeq.Retry(delay=timedelta(milliseconds=100))
    return n


@app.task(max_attempts=3)
async def inner_cancelled() -> None:
    inner = asyncio.ensure_future(asyncio.sleep(10))
    inner.cancel()
    await inner  # raises CancelledError into the task itself


@app.task(max_attempts=4, max_deliveries=2, backoff_min=0.05, backoff_max=0.1)
def fail_then_crash(tag: str) -> int:
    """Fails twice (acknowledged retries), then kills its worker once, then succeeds."""
    n = int(r().incr(f"test:calls:{tag}"))
    if n <= 2:
        raise ConnectionError(f"transient failure {n}")
    if n == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return n


@app.task(max_attempts=2, timeout=0.2)
def hang(seconds: float) -> None:
    time.sleep(seconds)


@app.task(pool="process", max_deliveries=2, max_attempts=1)
def child_exit() -> None:
    os._exit(3)  # the pool child dies under the job


@app.task(pool="process", max_attempts=1)
def slow_child(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@app.task(pool="process", max_attempts=2, timeout=0.5, backoff_min=0.1, backoff_max=0.2)
def stuck_child(tag: str) -> None:
    r().rpush(f"test:started:{tag}", os.getpid())
    time.sleep(60)
    r().rpush(f"test:ended:{tag}", os.getpid())


@app.task(pool="process", max_attempts=1, timeout=10)
def quick_child() -> int:
    return os.getpid()


@app.task(max_attempts=5)
def mark(i: int) -> int:
    """Record this execution OUTSIDE Redis (one line per run, appended atomically), so a test
    can count runs even when Redis itself loses data."""
    with open(os.environ["KUBEQ_TEST_MARKS"], "a") as f:
        f.write(f"{i} {time.time():.3f} {os.getpid()}\n")
    time.sleep(0.002)
    return i


# -- execution control (tests/redis/test_limits.py) -----


def _timed(tag: str) -> None:
    """Record this job's start and end, in ms of this host's clock (every worker process of
    a test runs on the test's host; read before Redis is asked, so a busy Redis cannot
    shift them)."""
    start = int(time.time() * 1000)
    time.sleep(0.05)
    end = int(time.time() * 1000)
    r().hset(f"test:times:{tag}", kubeq.current_job().id, f"{start} {end}")


@app.task(rate_limit="20/s", max_attempts=1)
def rated(tag: str) -> None:
    _timed(tag)


@app.task(queue="rq", max_attempts=1)
def queue_rated(tag: str) -> None:
    _timed(tag)


@app.task(max_attempts=1)
def unlimited_mark(tag: str) -> None:
    r().rpush(f"test:marks:{tag}", 1)


@app.task(concurrency_limit=2, max_attempts=1, limit_key=lambda tag, key, seconds: key)
def per_key(tag: str, key: str, seconds: float) -> None:
    """Records its start and end (Redis time) under its key; sleeps longer while
    test:slow:<tag> exists."""
    job = kubeq.current_job()
    sec, usec = r().time()
    r().rpush(f"test:span:{tag}:{key}", f"s {sec * 1000 + usec // 1000} {job.id}")
    r().rpush(f"test:pid:{tag}:{job.id}", os.getpid())
    deadline = time.monotonic() + 120
    while r().exists(f"test:slow:{tag}") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(seconds)
    sec, usec = r().time()
    r().rpush(f"test:span:{tag}:{key}", f"e {sec * 1000 + usec // 1000} {job.id}")


@app.task(max_attempts=3)
async def abortable_async(tag: str) -> None:
    r().rpush(f"test:started:{tag}", os.getpid())
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        r().rpush(f"test:stopped:{tag}", "cancelled")
        raise


@app.task(max_attempts=3)
def abortable_thread(tag: str) -> None:
    job = kubeq.current_job()
    r().rpush(f"test:started:{tag}", f"{job.id} {job.task} {job.queue} {job.attempt}")
    try:
        for _ in range(1200):
            job.check()
            time.sleep(0.05)
    except kubeq.JobAborted:
        r().rpush(f"test:stopped:{tag}", f"aborted={job.aborted}")
        raise


@app.task(max_attempts=3)
def never_checks(tag: str, seconds: float) -> str:
    r().rpush(f"test:started:{tag}", os.getpid())
    time.sleep(seconds)
    r().rpush(f"test:stopped:{tag}", "returned")
    return "late result"


@app.task(pool="process", max_attempts=3)
def abortable_child(tag: str) -> None:
    r().rpush(f"test:started:{tag}", os.getpid())
    time.sleep(60)
    r().rpush(f"test:stopped:{tag}", "returned")


@app.task(max_attempts=1, expires=30)
def expiring(tag: str) -> None:
    r().rpush(f"test:ran:{tag}", 1)


@app.task(max_attempts=1, soft_timeout=0.3, timeout=10)
def soft_thread(tag: str) -> str:
    try:
        for _ in range(200):
            kubeq.current_job().check()
            time.sleep(0.02)
    except kubeq.SoftTimeLimitExceeded:
        r().rpush(f"test:cleaned:{tag}", "thread")
        raise
    return "not reached"


@app.task(max_attempts=1, soft_timeout=0.3, timeout=10)
async def soft_async(tag: str) -> str:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        r().rpush(f"test:cleaned:{tag}", "async")
        raise
    return "not reached"


@app.task(pool="process", max_attempts=1, soft_timeout=0.3, timeout=10)
def soft_child(tag: str) -> str:
    try:
        time.sleep(10)
    except kubeq.SoftTimeLimitExceeded:
        r().rpush(f"test:cleaned:{tag}", "process")
        return "cleaned up"
    return "not reached"


@app.task(rate_limit="1/s", max_attempts=1)
def slow_rated(tag: str) -> None:
    _timed(tag)


# -- partitioned queues (tests/redis/test_partitioned_queue.py) -----

partitioned = kubeq.App(partitions={"pq": 3})


@partitioned.task(queue="pq")
def part_add(x: int, y: int) -> int:
    return x + y


@partitioned.task(queue="pq")
def part_note(result: Any, tag: str) -> None:
    """A callback on the partitioned queue: records what it received and where it ran."""
    r().rpush(f"test:notes:{tag}", f"{result} {kubeq.current_job().queue}")


@partitioned.task(queue="pq", max_attempts=1)
def part_fail(tag: str) -> None:
    raise RuntimeError(f"part_fail {tag}")


def _span(tag: str, key: str, seconds: float) -> None:
    """Record this job's start and end (Redis time) under test:span:<tag>:<key>."""
    job = kubeq.current_job()
    sec, usec = r().time()
    r().rpush(f"test:span:{tag}:{key}", f"s {sec * 1000 + usec // 1000} {job.id}")
    time.sleep(seconds)
    sec, usec = r().time()
    r().rpush(f"test:span:{tag}:{key}", f"e {sec * 1000 + usec // 1000} {job.id}")


@partitioned.task(queue="pq", concurrency_limit=1, max_attempts=1)
def part_limited(tag: str, seconds: float) -> None:
    _span(tag, "all", seconds)


@partitioned.task(
    queue="pq", concurrency_limit=1, max_attempts=1, limit_key=lambda tag, key, seconds: key
)
def part_keyed(tag: str, key: str, seconds: float) -> None:
    _span(tag, key, seconds)
