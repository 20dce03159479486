"""What a worker holding a job costs Redis, counted as Redis counts commands (``INFO
commandstats``: the commands a script runs inside Redis count too): its heartbeat renews the
lease every beat, and its document, presence and hand-off sweep cost little beside it."""

from __future__ import annotations

import time

import redis

import kubeq
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker

WINDOW = 20
"""Seconds counted: ten heartbeats at the default 30 s lease (one every 2 s)."""
OWN = {"config|resetstat", "info"}
"""The test's own commands."""
PER_SECOND = 5.0
"""The bound on commands a second of a worker holding one job on one queue, default settings
(docs/scaling.md, Workers and Redis: a heartbeat of 6 commands every 2 s, and an idle
worker's waits for its free slots): at most 11 heartbeats, 2 idle beats, 3 BLPOPs, 2 sweep
offers and a sweep fall in the window."""


def _commands(r: redis.Redis) -> dict[str, int]:
    stats = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def test_a_busy_worker_costs_redis_a_few_commands_a_second(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    q = app.queue("default")
    start_worker("--queue", "default")
    job = q.enqueue("qtasks.run_and_record", "busy", WINDOW + 15)
    wait_until(lambda: r.llen("test:started:busy"), what="the job to start")
    time.sleep(3)  # past its start (the fetch that took it, its first beats)
    r.config_resetstat()
    t0 = time.monotonic()
    time.sleep(WINDOW)
    took = time.monotonic() - t0
    calls = {c: n for c, n in _commands(r).items() if c not in OWN}
    assert job.status() == "active"  # held all along: these are a busy worker's commands
    assert sum(calls.values()) <= PER_SECOND * took, calls
    assert q.stats().live_workers == 1
