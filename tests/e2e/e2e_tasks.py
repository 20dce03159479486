"""Tasks the e2e worker pods run (`kubeq worker e2e_tasks`, with tests/e2e on PYTHONPATH).

Each execution appends its job's marker to a Redis list, so a test can prove that every job
ran exactly once and which pod ran it.
"""

from __future__ import annotations

import os
import time

import kubeq

app = kubeq.App()


@app.task(name="e2e.work")
def work(n: int, seconds: float = 0.05) -> int:
    started = time.time()
    time.sleep(seconds)
    app.redis.rpush(
        "e2e:runs", f"{n}|{os.environ.get('POD_NAME', '?')}|{started:.3f}|{time.time():.3f}"
    )
    return n
