"""The no-op tasks of bench/drain_distance.py and bench/redis_instructions.py: one sync (the
thread lane), one ``async def``, and two sync ones under limits far above any drain rate (a
rate limit, a concurrency limit), whose jobs take the limited paths of the scripts."""

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


@app.task(name="bench.noop_rated", rate_limit="1000000/s")
def noop_rated() -> None:
    pass


@app.task(name="bench.noop_slotted", concurrency_limit=1_000_000)
def noop_slotted() -> None:
    pass


BY_NAME: dict[str, Any] = {t.name: t for t in (noop, anoop, noop_rated, noop_slotted)}
"""Each task by its name."""


def enqueue(name: str, n: int) -> None:
    """``n`` jobs of the task ``name``, in batches of 1,000 (one round trip each)."""
    task = BY_NAME[name]
    for start in range(0, n, 1000):
        app.enqueue_many([task.s() for _ in range(min(1000, n - start))])
