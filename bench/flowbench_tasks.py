"""The tasks bench/flow_patterns.py runs in real workers (debounce, singleton, batches);
what each run did is recorded in Redis lists the bench reads."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import kubeq
from kubeq.store.connections import sync_client

app = kubeq.App()
_r: Any = None


def r() -> Any:
    global _r
    if _r is None:
        _r = sync_client(os.environ["KUBEQ_REDIS_URL"])
    return _r


@app.task(queue="flow", debounce=1.0, debounce_key=lambda key, n: key)
def reindex(key: str, n: int) -> None:
    r().rpush("bench:debounce", f"{key} {n}")


def _span(mode: str, key: str, n: int, seconds: float) -> None:
    r().rpush("bench:spans", f"s {mode} {key} {n} {os.getpid()} {time.time()}")
    time.sleep(seconds)
    r().rpush("bench:spans", f"e {mode} {key} {n} {os.getpid()} {time.time()}")


@app.task(queue="flow", singleton="keep_latest", singleton_key=lambda key, n, s: key)
def latest(key: str, n: int, seconds: float) -> None:
    _span("keep_latest", key, n, seconds)


@app.task(queue="flow", singleton="skip", singleton_key=lambda key, n, s: key)
def skip(key: str, n: int, seconds: float) -> None:
    _span("skip", key, n, seconds)


@app.task(queue="flow", batch=kubeq.Batch(max_size=500, max_wait=2.0))
def insert(items: list[int]) -> list[int]:
    r().rpush("bench:starts", json.dumps(sorted(items)))
    if r().set("bench:victim", os.getpid(), nx=True):
        time.sleep(600)  # the bench SIGKILLs this worker here
    r().rpush("bench:done", *items)
    return items
