"""``drain(app)``: a real worker, in this process, until the queues are empty.

Tests that want the real thing (Redis, leases, acks, retries through the delayed set) call
``drain(app)`` after enqueueing: it runs ``kubeq.worker.loop.Worker`` in burst mode on the App's
Redis with the App's registered tasks, again while the jobs it ran have follow-ups to run
(callbacks, chain links, chord callbacks, released children: their hand-offs are done at once),
returns when nothing is ready and nothing runs, and reports how the jobs ended. ``kubeq worker
--burst`` is the same from the command line, without the rounds for follow-ups.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from kubeq import defaults
from kubeq.store.keys import QueueKeys
from kubeq.store.stats import read_stats_async
from kubeq.worker import handoff
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
    names = _queues_of(app, queues)
    settings = WorkerSettings(
        tasks_module=modules.most_common(1)[0][0] if modules else "__main__",
        queues=names,
        partitions=dict(app.partitioner.partitions),
        concurrency=concurrency,
        pool=pool,
        redis_url=app.redis_url,
        prefix=app.prefix,
        burst=True,
        handle_signals=False,
    )
    outcomes: Counter[str] = Counter()
    while True:  # until the follow-ups of the jobs run are run too
        worker = Worker(settings, dict(app.tasks))
        code = await worker.run()
        settled = 0
        for per_queue in worker.settled.values():  # jobs settled, by queue and outcome
            for outcome, n in per_queue.items():
                outcomes[outcome] += n
                settled += n
        handed = await _hand_off_left(app, names)
        if code != 0 or not (settled or handed) or not await _ready(app, names):
            return DrainReport(dict(outcomes), code)


async def _hand_off_left(app: App, names: list[str]) -> int:
    """Hand off at once what the worker's own hand-offs left (the sweep waits a grace period
    for a worker that may still do them; here none will): how many entries there were."""
    client = app.aredis
    route = app.partitioner.route if app.partitioner.partitions else None
    found = 0
    for name in names:
        keys = QueueKeys.of(name, app.prefix)
        ids = cast("list[bytes]", await client.zrange(keys.handoff, 0, 999))
        if ids:
            found += len(ids)
            await handoff.hand_off(client, keys, ids, app.defaults_for, route)
    return found


async def _ready(app: App, names: list[str]) -> bool:
    """Whether a follow-up (a callback, a chain link, a released child) waits to run."""
    stats = await read_stats_async(app.aredis, names, app.prefix)
    return any(s.backlog for s in stats)


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
