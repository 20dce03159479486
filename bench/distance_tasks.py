"""The no-op tasks of bench/drain_distance.py: one sync (the thread lane), one ``async def``."""

from __future__ import annotations

from typing import Any

import kubeq

app = kubeq.App()  # KUBEQ_REDIS_URL


@app.task(name="bench.noop")
def noop() -> None:
    pass


@app.task(name="bench.anoop")
async def anoop() -> None:
    pass


def enqueue(name: str, n: int) -> None:
    """``n`` jobs of the task ``name``, in batches of 1,000 (one round trip each)."""
    task: Any = noop if name == "bench.noop" else anoop
    for start in range(0, n, 1000):
        app.enqueue_many([task.s() for _ in range(min(1000, n - start))])
