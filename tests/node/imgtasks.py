"""Tasks the container smoke tests run inside the kubeq image (mounted read-only at /app)."""

from __future__ import annotations

import os
import time

import kubeq

app = kubeq.App()


@app.task(name="img.square")
def square(n: int) -> int:
    return n * n


@app.task(name="img.whoami")
def whoami() -> dict[str, object]:
    """What the container lets the worker do: its ids, capabilities, a writable root."""
    caps = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("CapEff", "CapPrm", "CapBnd")):
                key, value = line.split(":", 1)
                caps[key] = int(value.strip(), 16)
    try:
        with open("/kubeq-write-probe", "w"):
            pass
        root_writable = True
    except OSError:
        root_writable = False
    return {"uid": os.getuid(), "gid": os.getgid(), "caps": caps, "root_writable": root_writable}


@app.task(name="img.slow", max_attempts=1)
def slow(n: int, seconds: float) -> int:
    app.redis.rpush("img:started", n)
    time.sleep(seconds)
    app.redis.rpush("img:ended", n)
    return n
