"""The task the partitioned-queue bench runs (bench/cluster_partitions.py): an async no-op, so
the figure is kubeq's and Redis's cost per job, not a task's."""

from __future__ import annotations

import kubeq

app = kubeq.App()


@app.task(name="bench.cluster_noop")
async def noop() -> None:
    pass
