"""Debounced and singleton tasks the redis-tier tests run in real worker processes (imported
by ``qtasks``, so they register on its App)."""

from __future__ import annotations

import time
from typing import Any

from qtasks import app, r


@app.task(debounce=1.0)
def reindex(doc: str, version: int) -> dict[str, Any]:
    """Record each run (doc, version) in a list; returns what it ran with."""
    r().rpush(f"flowtest:runs:{doc}", version)
    return {"doc": doc, "version": version}


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
