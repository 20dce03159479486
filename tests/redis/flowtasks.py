"""Debounced and singleton tasks the redis-tier tests run in real worker processes (imported
by ``qtasks``, so they register on its App)."""

from __future__ import annotations

import json
import time
from typing import Any

from qtasks import app, r

import kubeq


@app.task(debounce=1.0)
def reindex(doc: str, version: int) -> dict[str, Any]:
    """Record each run (doc, version) in a list; returns what it ran with."""
    r().rpush(f"flowtest:runs:{doc}", version)
    return {"doc": doc, "version": version}


@app.task(debounce=1.0, debounce_key=lambda doc, version: doc)
def reindex_keyed(doc: str, version: int) -> int:
    r().rpush(f"flowtest:runs:{doc}", version)
    return version


@app.task(debounce=0.5, debounce_max=2.0, debounce_key=lambda doc, version: doc)
def reindex_bounded(doc: str, version: int) -> int:
    r().rpush(f"flowtest:runs:{doc}", f"{version}@{time.time():.3f}")
    return version


@app.task(singleton="skip", singleton_key=lambda account, seconds, tag: account)
def sync_skip(account: str, seconds: float, tag: str) -> str:
    r().rpush(f"flowtest:runs:{account}", tag)
    time.sleep(seconds)
    return tag


@app.task(singleton="replace", singleton_key=lambda account, tag: account)
def sync_replace(account: str, tag: str) -> str:
    r().rpush(f"flowtest:runs:{account}", tag)
    return tag


@app.task(singleton="keep_latest", singleton_key=lambda account, seconds, tag: account)
def sync_latest(account: str, seconds: float, tag: str) -> str:
    r().rpush(f"flowtest:spans:{account}", f"s {int(time.time() * 1000)} {tag}")
    time.sleep(seconds)
    r().rpush(f"flowtest:spans:{account}", f"e {int(time.time() * 1000)} {tag}")
    return tag


@app.task(singleton="cancel_running", singleton_key=lambda account, seconds, tag: account)
async def sync_cancel(account: str, seconds: float, tag: str) -> str:
    import asyncio

    r().rpush(f"flowtest:runs:{account}", f"start {tag}")
    await asyncio.sleep(seconds)
    r().rpush(f"flowtest:runs:{account}", f"end {tag}")
    return tag


@app.task(singleton="skip", max_attempts=1)
def skip_fails(message: str) -> None:
    """Fails at once (to the dead letters), holding the task's singleton key while it runs."""
    raise RuntimeError(message)


@app.task(batch=kubeq.Batch(max_size=10, max_wait=0.5))
def insert_events(events: list[int]) -> list[int]:
    """Records each batch it gets; each item's result is ten times the item."""
    r().rpush("flowtest:batches", json.dumps(events))
    return [e * 10 for e in events]


@app.task(batch=kubeq.Batch(max_size=100, max_wait=0.3, key=lambda e: e["tenant"]))
def per_tenant(events: list[dict[str, Any]]) -> None:
    r().rpush("flowtest:tenant-batches", json.dumps(sorted({e["tenant"] for e in events})))


@app.task(batch=kubeq.Batch(max_size=4, max_wait=0.3), max_attempts=1)
def odd_fails(items: list[int]) -> list[Any]:
    """Each odd item fails on its own; the even ones finish."""
    return [ValueError(f"{i} is odd") if i % 2 else i for i in items]


@app.task(batch=kubeq.Batch(max_size=5, max_wait=0.3), max_attempts=1)
def batch_raises(items: list[int]) -> None:
    raise RuntimeError(f"the whole batch of {len(items)} failed")


@app.task(batch=kubeq.Batch(max_size=5, max_wait=5.0))
def slow_batch(items: list[int]) -> list[int]:
    """Records each run of a batch; the first batch to run holds its worker for a minute (to
    be SIGKILLed there)."""
    r().rpush("flowtest:slow-runs", json.dumps(items))
    if r().set("flowtest:slow-first", 1, nx=True):
        time.sleep(60)
    return items


@app.task(batch=kubeq.Batch(max_size=6, max_wait=0.3), backoff_min=0.05, backoff_max=0.1)
def items_retry(items: list[int]) -> list[Any]:
    """An odd item fails the first time it is seen (then it is retried on its own)."""
    r().rpush("flowtest:retry-batches", json.dumps(items))
    return [
        RuntimeError("first time") if i % 2 and r().sadd("flowtest:seen", i) else i for i in items
    ]


@app.task(batch=kubeq.Batch(max_size=500, max_wait=2.0))
def big_batches(items: list[int]) -> list[int]:
    r().rpush("flowtest:big-sizes", len(items))
    return items


@app.task(max_attempts=1)
def flaky(account: str, seconds: float, tag: str) -> str:
    """Runs ``seconds``, then fails (to the dead letters at once) while
    ``flowtest:fail:<account>`` is set; its calls give their debounce or singleton mode."""
    r().rpush(f"flowtest:runs:{account}", tag)
    time.sleep(seconds)
    if r().exists(f"flowtest:fail:{account}"):
        raise RuntimeError(f"{account} is failing")
    return tag


@app.task(batch=kubeq.Batch(max_size=3, max_wait=0.3))
def held_batch(items: list[int]) -> list[int]:
    """Records each run, then holds (up to a minute) until ``flowtest:go`` is set, or its
    worker is SIGKILLed there on the first run when ``flowtest:kill-first`` is set; records
    then the positions of its items aborted meanwhile (``aborted_items()``)."""
    r().rpush("flowtest:held-runs", json.dumps(items))
    first = r().set("flowtest:held-first", 1, nx=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not r().exists("flowtest:go"):
        time.sleep(0.02)
        if first and r().exists("flowtest:kill-first"):
            continue  # the test SIGKILLs this worker here
    aborted = kubeq.current_job(required=True).aborted_items()
    r().rpush("flowtest:held-aborted", json.dumps(aborted))
    return [i * 10 for i in items]
