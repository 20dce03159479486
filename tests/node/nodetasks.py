"""Tasks the real-node worker image runs (`kubeq worker nodetasks`): each run records, in
Redis, its job's marker, its pod and the worker version it ran on (``KUBEQ_VERSION``, set by
a versioned rollout), when it starts and when it ends; so a test proves which version ran a
job and that it started once."""

from __future__ import annotations

import os
import time

import kubeq

app = kubeq.App()


@app.task(name="node.versioned")
def versioned(n: int, seconds: float) -> dict[str, str]:
    me = f"{n}|{os.environ.get('POD_NAME', '?')}|{os.environ.get('KUBEQ_VERSION', '')}"
    app.redis.rpush("node:started", f"{me}|{time.time():.3f}")
    time.sleep(seconds)
    app.redis.rpush("node:ended", f"{me}|{time.time():.3f}")
    return {"pod": os.environ.get("POD_NAME", "?"), "version": os.environ.get("KUBEQ_VERSION", "")}
