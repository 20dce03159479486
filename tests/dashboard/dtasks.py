"""Tasks the dashboard tests run in real worker processes (imported as `dtasks`)."""

from __future__ import annotations

import os
import time

import redis

import kubeq

app = kubeq.App()


@app.task
def slow(x: int) -> int:
    time.sleep(0.15)
    return x


@app.task(max_attempts=1)
def explode(text: str) -> None:
    raise RuntimeError(f"exploded on {text}")


@app.task(max_attempts=1)
def gated(x: int) -> int:
    """Fails until the test opens the gate (sets the key ``gate``), then succeeds."""
    r = redis.Redis.from_url(os.environ["KUBEQ_REDIS_URL"])
    if not r.exists("gate"):
        raise RuntimeError("the gate is closed")
    return x * 2


@app.task
def hold(seconds: float) -> str:
    time.sleep(seconds)
    return "held"
