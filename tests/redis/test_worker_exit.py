"""A stopping worker exits even when a loop beside its fetch loop swallows its cancellation
(kubeq/worker/upkeep.py, ``_stop_background``). Real worker processes on the session's
redis-server; their heartbeat's publish swallows one cancellation (tests/redis/swallowtasks.py),
as redis-py's asyncio client can."""

from __future__ import annotations

import signal
import subprocess

import kubeq
from tests.redis.workers import StartWorker, WorkerProcess

LEASE = ("--lease", "1")
"""The heartbeat beats every 0.25 s (a quarter of the lease): it is in its publish when the
worker stops, and the publish swallows the cancellation that stops it."""


def _ended(w: WorkerProcess) -> int:
    try:
        return w.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker never exited:\n{w.log()}") from None


def test_a_burst_worker_exits_though_its_heartbeat_swallows_a_cancellation(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    q = app.queue("swallow")
    jobs = [q.enqueue("swallowtasks.pause", 0.5) for _ in range(2)]
    w = start_worker("--queue", "swallow", "--burst", *LEASE, module="swallowtasks")
    assert _ended(w) == 0
    assert [j.result(timeout=5) for j in jobs] == [0.5, 0.5]


def test_a_worker_stopped_by_sigterm_exits_though_its_heartbeat_swallows_a_cancellation(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    q = app.queue("swallow-term")
    w = start_worker("--queue", "swallow-term", *LEASE, module="swallowtasks")
    assert q.enqueue("swallowtasks.pause", 0.5).result(timeout=30) == 0.5  # up, and beating
    w.signal(signal.SIGTERM)
    assert _ended(w) == 0
