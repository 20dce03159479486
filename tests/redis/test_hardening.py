"""Regression tests for issue 10's defects in the worker, the scripts and the client: each
failed before its fix, against a real redis-server and real `kubeq worker` processes."""

from __future__ import annotations

import time

import qtasks
import redis
from conftest import StartWorker
from helpers import wait_until

import kubeq
from kubeq.keys import QueueKeys


def test_a_late_heartbeat_does_not_make_the_same_worker_run_a_job_twice(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """The lease expires while the job runs (as when a heartbeat reaches Redis late), and the
    SAME worker's next fetch reclaims the job: it must keep the run in progress under the new
    lease, not start a second one (and not bury the job as poison after max_deliveries)."""
    keys = QueueKeys.of("late")
    worker = start_worker("--queue", "late", "--concurrency", "2")
    job = app.queue("late").enqueue(qtasks.run_and_record, "late", 4.0)
    wait_until(lambda: r.llen("test:started:late") == 1, timeout=30)
    for _ in range(3):  # expire the lease, then wake the worker so its fetch runs first
        r.zadd(keys.active, {job.id: 0})
        app.queue("late").enqueue(qtasks.add, 1, 1)
        wait_until(lambda: int(r.hget(keys.job(job.id), "deliveries") or 0) >= 2, timeout=10)
        time.sleep(0.3)
    assert job.result(timeout=30) == worker.pid
    info = job.info()
    assert info.status == "finished" and info.attempts == 1
    assert info.deliveries >= 2, "the lease was never reclaimed: the test proved nothing"
    assert r.llen("test:started:late") == 1, "the same job ran twice in one worker"
    assert "keeps running it under the new lease" in worker.log()
    wait_until(lambda: app.queue("late").stats().in_flight == 0, timeout=10)
