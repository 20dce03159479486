"""Regression tests for defects found in the worker, the scripts and the client: each
failed before its fix, against a real redis-server and real `kubeq worker` processes."""

from __future__ import annotations

import json
import os
import time

import pytest
import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker


def test_a_late_heartbeat_does_not_make_the_same_worker_run_a_job_twice(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """The lease expires while the job runs (as when a heartbeat reaches Redis late), and the
    SAME worker's next fetch finds it: it takes the job back under the same lease token and
    keeps the run in progress, not a second one (and no new delivery is counted toward
    poison: max_deliveries)."""
    keys = QueueKeys.of("late")
    worker = start_worker("--queue", "late", "--concurrency", "2")
    job = app.queue("late").enqueue(qtasks.run_and_record, "late", 4.0)
    wait_until(lambda: r.llen("test:started:late") == 1, timeout=30)
    for _ in range(3):  # expire the lease, then wake the worker so its fetch runs first
        r.zadd(keys.active, {job.id: 0})
        app.queue("late").enqueue(qtasks.add, 1, 1)
        wait_until(lambda: (r.zscore(keys.active, job.id) or 0) > 0, timeout=10)
        time.sleep(0.3)
    assert job.result(timeout=30) == worker.pid
    info = job.info()
    assert info.status == "finished" and info.attempts == 1
    assert info.deliveries == 1, "the same worker's take-back counted as a new delivery"
    assert r.llen("test:started:late") == 1, "the same job ran twice in one worker"
    assert "this worker took it back and keeps running it" in worker.log(), (
        "the lease never lapsed to a fetch: the test proved nothing"
    )
    wait_until(lambda: app.queue("late").stats().in_flight == 0, timeout=10)


def test_a_timed_out_process_task_is_stopped_and_does_not_block_the_next(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """pool="process" is the documented way to bound a CPU-bound task: its child must be
    stopped at the timeout, so attempts never overlap and a job behind it still runs."""
    start_worker("--concurrency", "1")
    stuck = app.queue().enqueue(qtasks.stuck_child, "stuck")
    quick = app.queue().enqueue(qtasks.quick_child)
    with pytest.raises(kubeq.JobFailed, match="JobTimeout"):
        stuck.result(timeout=60)
    assert quick.result(timeout=60) > 0  # it started and ran within its own timeout
    children = [int(p) for p in r.lrange("test:started:stuck", 0, -1)]
    assert len(children) == 2  # two attempts, each in a child...
    for pid in children:  # ...and neither child is still running the task
        wait_until(lambda pid=pid: not _alive(pid), timeout=10, what=f"child {pid} stopped")
    assert r.llen("test:ended:stuck") == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_garbage_in_the_ready_set_is_dead_lettered_and_every_good_job_runs(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """One fetch pops good and malformed entries together: each bad one is dead-lettered
    with its reason and every good one runs (before, a script error part-way left the good
    ones popped and 'queued' in no set, for ever)."""
    keys = QueueKeys.of("junk")
    q = app.queue("junk")
    good = q.enqueue_many([qtasks.add.s(i, i) for i in range(3)])
    r.set(keys.job("wrong-type"), "not a hash")
    r.zadd(keys.ready, {"wrong-type": 1})
    bad_attempts = q.enqueue(qtasks.add, 1, 1)
    r.hset(keys.job(bad_attempts.id), "attempts", "abc")
    r.zadd(keys.ready, {b"\xff\xfe-not-utf8": 2})
    r.set(keys.leases, "not a number")
    r.set(keys.busy, "not a hash")
    worker = start_worker("--queue", "junk", "--concurrency", "8")
    assert [j.result(timeout=30) for j in good] == [0, 2, 4]
    reasons = {d.id: d.reason for d in q.dead_letters()}
    assert "its key held a string" in reasons["wrong-type"]
    assert reasons[bad_attempts.id] == "malformed job: attempts is not a number"
    assert any("invalid job id" in why for why in reasons.values())
    assert r.get(keys.base + "garbage:wrong-type") == b"not a hash"  # kept for a person
    stats = q.stats()
    assert (stats.backlog, stats.in_flight, stats.dead) == (0, 0, 3)
    assert q.enqueue(qtasks.add, 20, 22).result(timeout=30) == 42  # the worker is still fine
    assert worker.proc.poll() is None


def test_a_bad_ttl_in_one_job_does_not_strand_the_others_of_its_ack_batch(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    keys = QueueKeys.of("ttl")
    q = app.queue("ttl")
    jobs = q.enqueue_many([qtasks.add.s(i, 1) for i in range(20)])
    for job in jobs[::5]:
        r.hset(keys.job(job.id), "result_ttl", "1.5" if job is jobs[0] else str(10**17))
    start_worker("--queue", "ttl", "--concurrency", "20")
    assert [j.result(timeout=30) for j in jobs] == [i + 1 for i in range(20)]
    assert 0 < r.ttl(keys.job(jobs[0].id)) <= 1  # 1.5 s counts as 1 s, not "never expires"
    assert r.ttl(keys.job(jobs[5].id)) > 0  # an absurd TTL is capped, not refused


def test_a_queue_key_of_the_wrong_type_is_reported_as_such_not_as_an_outage(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    keys = QueueKeys.of("broken")
    r.set(keys.ready, "oops")
    worker = start_worker("--queue", "broken")
    wait_until(lambda: "fetch refused by Redis" in worker.log(), timeout=30)
    log = worker.log()
    assert f"{keys.ready} holds a string, not a sorted set" in log
    assert "Redis unreachable" not in log
    r.delete(keys.ready)
    assert app.queue("broken").enqueue(qtasks.add, 2, 3).result(timeout=30) == 5


def test_malformed_options_in_a_payload_are_dead_lettered_without_running_the_task(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    keys = QueueKeys.of("opts")
    jobs = []
    for timeout in ("abc", -1, None):
        job = app.queue("opts").enqueue(qtasks.run_and_record, "opts", 0)
        payload = json.loads(r.hget(keys.job(job.id), "payload") or b"{}")
        payload["options"] = {"timeout": timeout}
        r.hset(keys.job(job.id), "payload", json.dumps(payload))
        jobs.append(job)
    start_worker("--queue", "opts")
    for job in jobs[:2]:
        with pytest.raises(kubeq.JobFailed, match="malformed payload: bad options"):
            job.result(timeout=30)
        assert job.info().attempts == 1
    assert jobs[2].result(timeout=30) > 0  # null = no timeout: it runs
    assert r.llen("test:started:opts") == 1


def test_malformed_options_after_a_slow_job_are_dead_lettered_once_not_handed_back(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """The slow job makes the worker's slots "slow" (prefetch.py), which hands back what waits
    for a slot; a job whose attempt ended before it reached one (its options refused) is not
    waiting: it is dead-lettered once, not handed back and fetched again without end."""
    keys = QueueKeys.of("opts-slow")
    slow = app.queue("opts-slow").enqueue(qtasks.run_and_record, "opts-slow", 0.3)
    bad = app.queue("opts-slow").enqueue(qtasks.run_and_record, "opts-slow", 0)
    payload = json.loads(r.hget(keys.job(bad.id), "payload") or b"{}")
    payload["options"] = {"timeout": "abc"}
    r.hset(keys.job(bad.id), "payload", json.dumps(payload))
    start_worker("--queue", "opts-slow", "--concurrency", "1")
    assert slow.result(timeout=30) > 0
    with pytest.raises(kubeq.JobFailed, match="malformed payload: bad options"):
        bad.result(timeout=30)
    info = bad.info()
    assert (info.attempts, info.deliveries) == (1, 1), info
