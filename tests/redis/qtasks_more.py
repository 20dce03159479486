"""The job-context tasks (progress, meta) and the workflow tasks (callbacks, chords) of the
redis-tier tests: registered as ``qtasks.<name>`` and re-exported by ``qtasks``, whose worker
processes run them."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from qapp import app, r

__all__ = [
    "always_fails",
    "arecord_order",
    "aspan",
    "chord_done",
    "chord_member",
    "collect",
    "collect_any",
    "flaky_square",
    "gate",
    "killed_midway",
    "meta_across_retries",
    "oversized_progress",
    "record_args",
    "record_failure",
    "record_result",
    "reports_async",
    "reports_child",
    "reports_thread",
    "span",
    "with_callbacks",
    "zombie_progress",
]

import kubeq

# -- job context: progress and meta --


def _report(tag: str) -> dict[str, Any]:
    """Report progress and meta, wait for test:go:<tag>, report the end; returns the meta the
    task sees."""
    job = kubeq.current_job()
    job.set_progress({"done": 1, "total": 2})
    job.update_meta(stage="download")
    job.update_meta(size=3)
    r().rpush(f"test:started:{tag}", f"{job.id} {job.attempt}")
    deadline = time.monotonic() + 60
    while not r().exists(f"test:go:{tag}") and time.monotonic() < deadline:
        time.sleep(0.02)
    job.set_progress({"done": 2, "total": 2})
    return job.meta


@app.task(name="qtasks.reports_thread", max_attempts=1)
def reports_thread(tag: str) -> dict[str, Any]:
    return _report(tag)


@app.task(name="qtasks.reports_child", pool="process", max_attempts=1)
def reports_child(tag: str) -> dict[str, Any]:
    return _report(tag)


@app.task(name="qtasks.reports_async", max_attempts=1)
async def reports_async(tag: str) -> dict[str, Any]:
    job = kubeq.current_job()
    job.set_progress(50)
    job.update_meta(stage="async")
    r().rpush(f"test:started:{tag}", f"{job.id} {job.attempt}")
    while not r().exists(f"test:go:{tag}"):
        await asyncio.sleep(0.02)
    job.set_progress(100)
    return job.meta


@app.task(name="qtasks.meta_across_retries", max_attempts=2, backoff_min=0.1, backoff_max=0.2)
def meta_across_retries(tag: str) -> dict[str, Any]:
    """The first attempt stores meta and fails; the second sees that meta and adds to it."""
    job = kubeq.current_job()
    seen = job.meta
    job.update_meta(**{f"attempt{job.attempt}": True})
    if job.attempt == 1:
        raise RuntimeError("first attempt fails on purpose")
    return seen


@app.task(name="qtasks.zombie_progress", max_attempts=1)
def zombie_progress(tag: str, seconds: float) -> int:
    """Reports progress, sleeps (its worker is frozen meanwhile), reports again: a zombie's
    second report is refused and recorded."""
    job = kubeq.current_job()
    job.set_progress(f"started by {os.getpid()}")
    r().rpush(f"test:started:{tag}", os.getpid())
    time.sleep(seconds)
    try:
        job.set_progress(f"ended by {os.getpid()}")
    except kubeq.LeaseLost as exc:
        r().rpush(f"test:refused:{tag}", f"{os.getpid()} {exc}")
        raise
    return os.getpid()


@app.task(name="qtasks.oversized_progress", max_attempts=1)
def oversized_progress(size: int) -> str:
    try:
        kubeq.current_job().set_progress("x" * size)
    except ValueError as exc:
        return str(exc)
    return "stored"


# -- callbacks --


@app.task(name="qtasks.record_result", max_attempts=1)
def record_result(result: Any, tag: str) -> None:
    """An on_success callback: records the parent's result it received."""
    r().rpush(f"test:cb:{tag}", json.dumps([kubeq.current_job().id, result]))


@app.task(name="qtasks.record_failure", max_attempts=1)
def record_failure(job_id: str, error: str, tag: str) -> None:
    """An on_failure callback: records the failed parent's id and error."""
    r().rpush(f"test:cb:{tag}", json.dumps([kubeq.current_job().id, job_id, error]))


@app.task(name="qtasks.record_args", max_attempts=1)
def record_args(*args: Any) -> None:
    r().rpush(f"test:cb:{args[0]}", json.dumps(list(args)))


@app.task(name="qtasks.always_fails", max_attempts=2, backoff_min=0.1, backoff_max=0.2)
def always_fails(tag: str) -> None:
    r().rpush(f"test:attempts:{tag}", kubeq.current_job().attempt)
    raise ValueError(f"{tag} fails on purpose")


@app.task(
    name="qtasks.with_callbacks",
    max_attempts=1,
    on_success=record_result.s("per-task"),
    on_failure=record_failure.s("per-task"),
)
def with_callbacks(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return x * 2


@app.task(name="qtasks.killed_midway", max_attempts=1, max_deliveries=1)
def killed_midway(tag: str) -> None:
    r().rpush(f"test:started:{tag}", os.getpid())
    time.sleep(60)


@app.task(name="qtasks.gate", max_attempts=1)
def gate(tag: str) -> str:
    """Records its start and waits for test:go:<tag>."""
    r().rpush(f"test:started:{tag}", os.getpid())
    deadline = time.monotonic() + 60
    while not r().exists(f"test:go:{tag}") and time.monotonic() < deadline:
        time.sleep(0.02)
    return tag


@app.task(name="qtasks.collect", max_attempts=1)
def collect(results: list[Any], tag: str) -> int:
    """A chord's callback: records the results it received; returns their sum."""
    r().rpush(f"test:chord:{tag}", json.dumps(results))
    return sum(results)


@app.task(name="qtasks.flaky_square", max_attempts=3, backoff_min=0.05, backoff_max=0.1)
def flaky_square(x: int, tag: str) -> int:
    """Fails its first attempt when x is even (a retried chord member)."""
    if x % 2 == 0 and kubeq.current_job().attempt == 1:
        raise RuntimeError("first attempt fails on purpose")
    return x * x


@app.task(name="qtasks.collect_any", max_attempts=1)
def collect_any(results: list[Any], tag: str) -> Any:
    """A chord's callback for mixed results: records them, returns the first."""
    r().rpush(f"test:chord:{tag}", json.dumps(results))
    return results[0]


# -- chord stress --


@app.task(name="qtasks.chord_member", max_attempts=3, backoff_min=0.01, backoff_max=0.05)
def chord_member(i: int, j: int) -> int:
    """A member of chord i: records which worker ran it; every 7th fails its first attempt
    (a retried member)."""
    job = kubeq.current_job()
    assert job is not None
    r().hset("test:member-pid", f"{i}:{j}", os.getpid())
    if j % 7 == 3 and job.attempt == 1:
        raise RuntimeError("first attempt fails on purpose")
    return i * 100 + j


@app.task(name="qtasks.chord_done", max_attempts=1)
def chord_done(results: list[Any], i: int) -> int:
    """The callback of chord i: records every call with what it received."""
    r().rpush("test:chord-calls", json.dumps([i, results]))
    return len(results)


# -- slots: what runs at once --


def _mark(tag: str, kind: str) -> None:
    sec, usec = r().time()
    r().rpush(f"test:span:{tag}", f"{kind} {sec * 1000 + usec // 1000} {os.getpid()}")


@app.task
def span(tag: str, seconds: float) -> None:
    """A sync job that records its start and end (Redis time, ms) in test:span:<tag>."""
    _mark(tag, "s")
    time.sleep(seconds)
    _mark(tag, "e")


@app.task
async def aspan(tag: str, seconds: float) -> None:
    """``span`` as an async task (on the worker's loop)."""
    _mark(tag, "s")
    await asyncio.sleep(seconds)
    _mark(tag, "e")


@app.task
async def arecord_order(tag: str, value: Any) -> None:
    """``record_order`` as an async task (on the worker's loop)."""
    r().rpush(f"test:order:{tag}", value)


import flowtasks  # noqa: E402, F401  (debounced and singleton tasks, same App)
