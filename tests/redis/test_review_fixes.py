"""Regression tests for defects found in review: stranded jobs, lease tokens reused across
job-id reuse, poison detection counting acknowledged retries, timeouts measured while a job
waits for a thread."""

from __future__ import annotations

import signal
import time

import pytest
import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from kubeq.store.wire import FETCH_HEADER
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker


def test_retry_with_a_timedelta_delay_works(app: kubeq.App, start_worker: StartWorker) -> None:
    start_worker()
    assert app.queue().enqueue(qtasks.retry_with_timedelta, "td").result(timeout=30) == 2


def test_a_tasks_own_cancellation_fails_it_instead_of_stranding_it(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    worker = start_worker("--lease", "2")
    job = app.queue().enqueue(qtasks.inner_cancelled)
    with pytest.raises(kubeq.JobFailed, match="CancelledError"):
        job.result(timeout=30)
    assert app.queue().stats().in_flight == 0
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0


def test_a_zombie_cannot_settle_a_new_job_that_reuses_its_id(
    app: kubeq.App, r: redis.Redis
) -> None:
    """Drive the scripts directly: A leases, A's lease is reclaimed, the job is redone and
    then enqueued again under the same id; C leases the new one. A's token must not match."""
    q, keys = app.queue("fence"), QueueKeys.of("fence")
    fetch = app.scripts.fetch
    args = lambda worker: [worker, 1, 60_000, 0, 15_000, 1, keys.base]  # noqa: E731

    LEASE = FETCH_HEADER + 2  # the first job's lease token in fetch.lua's reply
    job = q.enqueue_call(qtasks.add, (1, 1), job_id="same-id")
    a = fetch(keys=keys.script_keys, args=args("A"))
    a_lease = a[LEASE]
    r.zadd(keys.active, {"same-id": 0})  # A's lease has expired
    b = fetch(keys=keys.script_keys, args=args("B"))  # reclaims, then B takes it

    def ack(lease: object, value: str) -> int:
        """Settle one delivery of same-id with the batched ack script; its flag."""
        flags = app.scripts.ack(
            keys=keys.script_keys,
            args=[keys.base, 1, "same-id", lease, "finished", value],
        )
        return int(flags[0])

    assert ack(b[LEASE], "1") == 1
    q.enqueue_call(qtasks.add, (2, 2), job_id="same-id")  # the finished job is replaced
    c = fetch(keys=keys.script_keys, args=args("C"))
    assert c[LEASE - 1] == b"same-id" and c[LEASE] != a_lease
    assert ack(a_lease, "666") == 0  # the zombie's stale token is refused
    assert ack(c[LEASE], "4") == 1
    assert job.result(timeout=1) == 4


def test_poison_detection_ignores_acknowledged_retries(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    """Two failures (acknowledged) and one crash stay below max_deliveries=2 of lost ones."""
    job = app.queue().enqueue(qtasks.fail_then_crash, "fc")
    first = start_worker("--lease", "1")
    wait_until(lambda: first.proc.poll() is not None, timeout=60, what="the crash")
    start_worker("--lease", "1")
    assert job.result(timeout=60) == 4
    info = job.info()
    assert info.attempts == 3 and info.deliveries == 4


def test_timeout_runs_from_the_start_of_the_job_not_from_its_queueing(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    """Concurrency 1 = 2 threads: two hung jobs time out and keep their threads; a third job
    must wait for a thread, not fail its attempts while it waits."""
    worker = start_worker("--concurrency", "1", "--metrics-port", "0")
    q = app.queue()
    hung = [q.enqueue_call(qtasks.hang, (1.5,), max_attempts=1) for _ in range(2)]
    for job in hung:
        with pytest.raises(kubeq.JobFailed, match="timeout"):
            job.result(timeout=30)
    quick = q.enqueue_call(qtasks.hang, (0.0,), max_attempts=1)
    assert quick.result(timeout=30) is None  # it ran once a hung thread returned
    time.sleep(0.1)
    assert worker.proc.poll() is None


def test_a_job_that_kills_its_pool_child_is_buried_and_bystanders_run_again(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    worker = start_worker("--concurrency", "2")
    q = app.queue()
    assert q.enqueue(qtasks.slow_child, 0.0).result(timeout=60)  # the pool is warm
    bystander = q.enqueue(qtasks.slow_child, 1.0)
    time.sleep(0.3)
    killer = q.enqueue(qtasks.child_exit)
    with pytest.raises(kubeq.JobFailed, match="its process died 2 times"):
        killer.result(timeout=60)
    assert bystander.result(timeout=60) > 0  # broken pool: released, not failed
    assert bystander.info().attempts == 1
    assert worker.proc.poll() is None
