"""Tasks the e2e worker pods run (`kubeq worker e2e_tasks`, with tests/e2e on PYTHONPATH).

Each execution appends its job's marker to a Redis list, so a test can prove that every job
ran exactly once and which pod ran it. ``E2E_IMPORT_SECONDS`` (env) makes the import, so the
worker's start, take that long: a pod that runs but has not taken a job yet.
"""

from __future__ import annotations

import os
import time

import kubeq

time.sleep(float(os.environ.get("E2E_IMPORT_SECONDS", "0")))
app = kubeq.App()


@app.task(name="e2e.work")
def work(n: int, seconds: float = 0.05) -> int:
    started = time.time()
    time.sleep(seconds)
    app.redis.rpush(
        "e2e:runs", f"{n}|{os.environ.get('POD_NAME', '?')}|{started:.3f}|{time.time():.3f}"
    )
    return n
