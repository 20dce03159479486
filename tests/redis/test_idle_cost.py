"""What an idle worker costs Redis, counted as Redis counts commands (``INFO commandstats``:
the commands a script runs inside Redis count too), and that it stays live meanwhile."""

from __future__ import annotations

import time

import redis

import kubeq
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker

WINDOW = 30
"""Seconds counted: three idle beats (kubeq/worker/idle.py)."""
OWN = {"config|resetstat", "info"}
"""The test's own commands."""


def _commands(r: redis.Redis) -> dict[str, int]:
    stats = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def test_an_idle_worker_costs_redis_at_most_one_command_a_second(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    q = app.queue("default")
    start_worker("--queue", "default")
    wait_until(lambda: q.stats().live_workers == 1, what="the worker to register")
    time.sleep(2)  # past its start (loading the scripts, the first fetch and publish)
    r.config_resetstat()
    time.sleep(WINDOW)
    calls = {c: n for c, n in _commands(r).items() if c not in OWN}
    assert sum(calls.values()) <= WINDOW, calls
    assert q.stats().live_workers == 1  # still counted live by the operator and the dashboard
    job = q.enqueue("qtasks.add", 2, 3)
    assert job.result(timeout=30) == 5  # and it still takes work
