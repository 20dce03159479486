"""``drain(app)``: a real worker, in this process, until the queues are empty.

Tests that want the real thing (Redis, leases, acks, retries through the delayed set) call
``drain(app)`` after enqueueing: it runs ``kubeq.worker.loop.Worker`` in burst mode on the App's
Redis with the App's registered tasks, returns when nothing is ready and nothing runs, and
reports how the jobs ended. ``kubeq worker --burst`` is the same from the command line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubeq import defaults
from kubeq.worker.loop import Worker
from kubeq.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from kubeq.client.app import App


@dataclass(frozen=True)
class DrainReport:
    """What one drain did: jobs settled by outcome (finished, retried, failed, ...)."""

    outcomes: dict[str, int] = field(default_factory=dict)
    exit_code: int = 0

    @property
    def finished(self) -> int:
        return self.outcomes.get("finished", 0)

    @property
    def failed(self) -> int:
        return self.outcomes.get("failed", 0)

    @property
    def retried(self) -> int:
        return self.outcomes.get("retried", 0)


def _queues_of(app: App, queues: Iterable[str] | str | None) -> list[str]:
    """The queues to drain, each partitioned one as all its partitions."""
    if isinstance(queues, str):
        named = [queues]
    elif queues is not None:
        named = list(queues)
    else:
        named = list(dict.fromkeys(t.options.queue for t in app.tasks.values()))
    return list(dict.fromkeys(app.partitioner.expand(named or [app.default_queue])))


async def adrain(
    app: App,
    queues: Iterable[str] | str | None = None,
    *,
    concurrency: int = defaults.CONCURRENCY,
    pool: str = defaults.POOL,
) -> DrainReport:
    """``drain`` on the running loop (from an async test)."""
    modules = Counter(t.func.__module__ for t in app.tasks.values())
    settings = WorkerSettings(
        tasks_module=modules.most_common(1)[0][0] if modules else "__main__",
        queues=_queues_of(app, queues),
        partitions=dict(app.partitioner.partitions),
        concurrency=concurrency,
        pool=pool,
        redis_url=app.redis_url,
        prefix=app.prefix,
        burst=True,
        handle_signals=False,
    )
    worker = Worker(settings, dict(app.tasks))
    code = await worker.run()
    outcomes: Counter[str] = Counter()
    for metric in worker.metrics.jobs.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                outcomes[sample.labels["outcome"]] += int(sample.value)
    return DrainReport(dict(outcomes), code)


def drain(
    app: App,
    queues: Iterable[str] | str | None = None,
    *,
    concurrency: int = defaults.CONCURRENCY,
    pool: str = defaults.POOL,
) -> DrainReport:
    """Run a real worker on ``queues`` (default: the queues of the App's tasks) until nothing
    is ready and nothing runs; jobs scheduled for later (delay, retry backoff) stay queued."""
    coro = adrain(app, queues, concurrency=concurrency, pool=pool)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as helper:  # called from async code
        return helper.submit(asyncio.run, coro).result()
