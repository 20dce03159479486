"""One process of the swarm (bench/swarm.py): many real kubeq workers on one event loop.

    python bench/swarm_fleet.py URL COUNT FIRST QUEUE[,QUEUE...] RAMP [SHARE]

Each worker is kubeq's own ``Worker`` (its fetch, ack, heartbeat, idle beat and wake waits,
its own worker id, leases and Redis client; with SHARE above 1, each SHARE workers in a row
share one client, i.e. one connection pool, see swarm.py). Worker ``FIRST + i`` consumes
queue ``i % len(QUEUES)``. The workers start in batches of ``BATCH``: the next batch once
every worker of this one has had its first fetch answered (or RAMP seconds have passed
since the start), so the start keeps pace with the machine instead of a clock. The process
prints ``ready`` when every worker has fetched once (or the ramp ran out). A line ``measure``
on its stdin starts the measurement (what was recorded during the start is forgotten), and
a line ``stop`` stops the workers and prints one JSON line: the enqueue -> start delay of
every job its workers started since ``measure``, each start's job id and lease token (so the
harness counts the jobs started more than once, and by which delivery), the jobs each worker
started, the slowest lease renewal (heartbeat round trip), the slowest idle beat, the longest
gap between two heartbeats of a worker holding a job, the longest a held job's lease may have
gone unrenewed in Redis (from the send of the last renewal known applied to the answer of
the next) and the longest its event loop stood still (starved or stopped: no renewal could
be sent meanwhile), how many workers had fetched when ``ready`` was printed, the worker log
lines that say a delivery went wrong (counted by kind), its own CPU seconds and its peak
memory.

A shared client is closed once, by the process at its end, never by one of its workers:
a worker that stops first would cut the connections of the others' round trips under way
(an outcome applied in Redis whose reply is lost is sent again; kubeq answers it "recorded
already", but a pool closed under a worker loses the outcome until its lease expires).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import sys
import time
from typing import Any, ClassVar

import redis.asyncio

import kubeq
from kubeq.store import connections
from kubeq.store.scripts import Scripts
from kubeq.worker.idle import WakeWaits
from kubeq.worker.loop import Worker, WorkerSettings

app = kubeq.App()
STARTS: list[float] = []
"""Seconds from the enqueue call to the task's start, one per job started here."""
RUNS: list[tuple[str, str]] = []
"""(job id, lease token) of each start here: a job started twice shows up twice."""
JOB_SECONDS = 2.5
"""How long a job runs: longer than a heartbeat interval (2 s), so busy workers renew."""
BATCH = 50
"""Workers started at a time (their connects and first fetches), not thousands at once."""


@app.task
async def touch(sent: float) -> None:
    """A job of the busy phase: records its enqueue -> start delay, then holds its slot."""
    STARTS.append(time.time() - sent)
    job = kubeq.current_job(required=True)
    RUNS.append((job.id, job.lease))
    await asyncio.sleep(JOB_SECONDS)


class Slowest:
    """The slowest heartbeat figures of this process's workers."""

    renewal = 0.0
    beat = 0.0
    gap = 0.0
    exposure = 0.0
    stall = 0.0

    @classmethod
    def reset(cls) -> None:
        cls.renewal = cls.beat = cls.gap = cls.exposure = cls.stall = 0.0


async def watch_loop(every: float = 0.5) -> None:
    """The longest this process's event loop stood still (starved, or the process stopped):
    no worker of it could renew a lease meanwhile."""
    while True:
        t0 = time.monotonic()
        await asyncio.sleep(every)
        Slowest.stall = max(Slowest.stall, time.monotonic() - t0 - every)


class LogKinds(logging.Handler):
    """Counts the worker log lines that say a delivery went wrong, by kind."""

    KINDS: ClassVar[dict[str, str]] = {
        "outcome refused": "outcome_refused",
        "outcome recorded already": "outcome_sent_again",
        "lease lost": "lease_lost",
        "its lease lapsed while it ran here": "lapsed_taken_back",
        "outcomes not recorded": "outcomes_not_recorded",
    }
    counts: ClassVar[dict[str, int]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        for needle, kind in self.KINDS.items():
            if needle in text:
                self.counts[kind] = self.counts.get(kind, 0) + 1


class SwarmWorker(Worker):
    """kubeq's Worker, timing its heartbeats and idle beats."""

    def __init__(self, settings: WorkerSettings, shared: Any = None) -> None:
        super().__init__(settings, dict(app.tasks))
        if shared is not None:
            self._redis = shared
            self._scripts = Scripts(shared)
            self._wakes = WakeWaits(shared, self._router, self._scripts.idle, settings, self.vitals)
        self._last_renewal: float | None = None
        self._applied_since: float | None = None
        """When the last renewal known applied was sent (it reached Redis after that)."""
        self.fetched = asyncio.Event()
        """Set once a fetch of this worker was answered: it has registered and is live."""
        self.jobs = 0
        """Jobs this worker started since the measurement began."""
        beat = self._wakes._beat

        async def timed_beat() -> int:
            t0 = time.monotonic()
            try:
                return await beat()
            finally:
                Slowest.beat = max(Slowest.beat, time.monotonic() - t0)

        self._wakes._beat = timed_beat  # type: ignore[method-assign]

    async def _exchange(self, fetch: bool) -> int:
        remaining = await super()._exchange(fetch)
        if fetch:
            self.fetched.set()
        return remaining

    def _start(self, d: Any) -> None:
        self.jobs += 1
        super()._start(d)

    async def _heartbeat(self) -> bool:
        held = bool(self._held())  # running, or ended with its outcome not recorded yet
        t0 = time.monotonic()
        renewed = await super()._heartbeat()
        if not held:
            self._last_renewal = self._applied_since = None
            return renewed
        now = time.monotonic()
        Slowest.renewal = max(Slowest.renewal, now - t0)
        if self._last_renewal is not None:
            Slowest.gap = max(Slowest.gap, now - self._last_renewal)
        if self._applied_since is not None:
            Slowest.exposure = max(Slowest.exposure, now - self._applied_since)
        self._last_renewal = now
        self._applied_since = max(t0, self._applied_since or t0)
        return renewed


def shared_client(url: str, count: int) -> Any:
    """One client for ``count`` workers. Each worker's blocked BLPOP holds a connection of
    its pool, so the pool has one per worker and 50 more, and a command waits for a free one
    (a blocking pool) instead of failing. Few workers to a client: the client's reaction to
    one worker's connection error (redis-py's cluster client reconnects the node's free
    connections and refreshes its slot map) reaches every worker sharing it."""
    if url.startswith("redis+cluster://"):  # a pool per node, each as large
        client = connections.async_client(url, max_connections=count + 50)
    else:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=count + 50, timeout=None, socket_timeout=15.0
        )
        client = connections.hiredis_packing(redis.asyncio.Redis.from_pool(pool))
    client.aclose = _kept_open  # a worker's stop must not close the others' connections
    return client


async def _kept_open() -> None:
    """A shared client's ``aclose`` while its workers run: nothing (the process exits)."""


def raise_open_files() -> None:
    """Up to the hard limit: each worker holds two or three connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def count_delivery_lines() -> None:
    """Count the worker's lines of ``LogKinds`` (the resent outcome's is at INFO); only
    warnings and errors are printed."""
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)
    logging.getLogger("kubeq.worker").addHandler(LogKinds(level=logging.INFO))
    logging.getLogger("kubeq.worker").setLevel(logging.INFO)


async def main(
    url: str, count: int, first: int, queues: list[str], ramp: float, share: int
) -> None:
    raise_open_files()
    count_delivery_lines()
    clients = [shared_client(url, share) for _ in range(0, count, share)] if share > 1 else []
    workers = [
        SwarmWorker(
            WorkerSettings(
                "swarm_fleet",
                [queues[(first + i) % len(queues)]],
                redis_url=url,
                handle_signals=False,
                worker_id=f"swarm-{first + i}",
            ),
            clients[i // share] if clients else None,
        )
        for i in range(count)
    ]
    runners: list[asyncio.Task[int]] = []
    deadline = time.monotonic() + ramp
    for k in range(0, count, BATCH):
        batch = workers[k : k + BATCH]
        runners += [asyncio.create_task(w.run()) for w in batch]
        waits = [asyncio.create_task(w.fetched.wait()) for w in batch]
        await asyncio.wait(waits, timeout=max(0.0, deadline - time.monotonic()))
        for t in waits:
            t.cancel()
    print("ready", flush=True)
    watcher = asyncio.create_task(watch_loop())  # until the report
    fetched = sum(w.fetched.is_set() for w in workers)
    loop = asyncio.get_running_loop()
    while (line := (await loop.run_in_executor(None, sys.stdin.readline)).strip()) != "stop":
        if line == "measure":  # the start's figures are not the fleet's
            Slowest.reset()
            STARTS.clear()
            RUNS.clear()
            LogKinds.counts.clear()
            for w in workers:
                w.jobs = 0
        elif not line:  # the harness is gone
            os._exit(1)
    cpu = os.times()
    for w in workers:
        w.request_stop()
    await asyncio.wait(runners, timeout=30)
    watcher.cancel()
    print(
        json.dumps(
            {
                "starts": STARTS,
                "runs": RUNS,
                "log_kinds": LogKinds.counts,
                "jobs_per_worker": [w.jobs for w in workers],
                "fetched_when_ready": fetched,
                "slowest_renewal_s": Slowest.renewal,
                "slowest_beat_s": Slowest.beat,
                "longest_gap_s": Slowest.gap,
                "longest_exposure_s": Slowest.exposure,
                "longest_loop_stall_s": Slowest.stall,
                "cpu_s": cpu.user + cpu.system,
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        ),
        flush=True,
    )
    os._exit(0)  # the clients' sockets go with the process


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    import swarm_fleet  # the tasks must be swarm_fleet.touch, the name the harness enqueues

    a = sys.argv[1:]
    share = int(a[5]) if len(a) > 5 else 1
    asyncio.run(swarm_fleet.main(a[0], int(a[1]), int(a[2]), a[3].split(","), float(a[4]), share))
