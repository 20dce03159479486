"""The hand-off sweep is one worker's at a time per queue (kubeq/worker/sweeps.py): a fleet of
idle workers sweeps a queue as often as one worker does, counted by Redis; and when the
worker that claimed the sweep is killed, the queue's next worker sweeps once its claim
lapses, so what a dead worker left comes back."""

from __future__ import annotations

import signal
import time

import qtasks
import redis

import kubeq
from kubeq import defaults
from kubeq.store.keys import QueueKeys
from kubeq.worker import sweeps
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker, WorkerProcess

WORKERS = 4
WINDOW = 30
"""Seconds counted: two sweep offers of each worker (sweeps.SWEEP_SECONDS)."""


def _claimant(r: redis.Redis, keys: QueueKeys) -> str:
    held = r.get(keys.sweeping)
    return held.decode() if held else ""


def _is(worker: WorkerProcess, claimant: str) -> bool:
    """Whether ``claimant`` (a worker id: host:pid:random) is the id of ``worker``."""
    return f":{worker.pid}:" in claimant


def test_a_fleet_of_idle_workers_sweeps_a_queue_as_often_as_one(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    q = app.queue("default")
    for _ in range(WORKERS):
        start_worker("--queue", "default")
    wait_until(lambda: q.stats().live_workers == WORKERS, what="the workers to register")
    r.config_resetstat()
    time.sleep(WINDOW)
    stats = r.info("commandstats")
    reads = int(stats.get("cmdstat_zrangebyscore", {}).get("calls", 0))
    # a sweep reads the hand-off and linking sets of its queue (2 reads); claims last
    # CLAIM_SECONDS, so at most 3 sweeps of the queue fall in the window, by any worker
    most = 2 * (int(WINDOW // sweeps.CLAIM_SECONDS) + 1)
    assert reads <= most, f"{reads} sweep reads by {WORKERS} idle workers in {WINDOW} s"
    assert reads > 0, "no worker swept the queue"


def test_when_the_sweeping_worker_is_killed_another_sweeps_what_it_left(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    keys = QueueKeys.of("default")
    q = app.queue("default")
    first = start_worker("--queue", "default", "--lease", "4")
    wait_until(lambda: _is(first, _claimant(r, keys)), what="the first worker to claim a sweep")
    held = q.enqueue(qtasks.run_and_record, "held", 60)
    wait_until(lambda: r.llen("test:started:held"), what="the first worker to run a job")
    # a parent that ended with a child waiting on it: only a sweep hands it off now
    parent = q.enqueue_call(qtasks.add, (1, 2), delay=600)
    child = q.enqueue_call(qtasks.add, (3, 4), depends_on=[parent], allow_failure=True)
    assert parent.cancel()
    first.signal(signal.SIGKILL)
    first.wait()
    r.zadd(keys.handoff, {parent.id: 1})  # aged past the grace period
    assert _is(first, _claimant(r, keys)), "the dead worker's claim is still held"
    assert child.status() == "deferred"
    second = start_worker("--queue", "default", "--lease", "4")
    lapse = sweeps.CLAIM_SECONDS + sweeps.SWEEP_SECONDS + defaults.HANDOFF_GRACE_SECONDS
    assert child.result(timeout=lapse + 60) == 7  # handed off by the second worker's sweep
    assert _is(second, _claimant(r, keys)) or not _claimant(r, keys)
    # the hand-off forgets its entry in its last round trip, which may follow the child's run
    wait_until(lambda: r.zscore(keys.handoff, parent.id) is None, what="the entry forgotten")
    # and the job the dead worker held runs again once its lease has expired
    wait_until(lambda: r.llen("test:started:held") == 2, timeout=60, what="the held job again")
    assert held.status() == "active"
