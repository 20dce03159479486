"""Durable sleeps and waits where they meet the rest of kubeq, with real worker processes on a
real Redis: the operator's backlog leaves sleeping jobs out (a fleet whose jobs all sleep
scales to zero, and back up when they fall due or are signalled); abort, cancel and purge
end a sleeping job for good; a job id stays taken while its job sleeps; the result TTL
covers the step records; a waiting parent is not finished for its dependents."""

from __future__ import annotations

from typing import Any

import durtasks
import pytest
import redis

import kubeq
from kubeq.store.stats import read_stats
from kubeq.testing import drain
from kubeq_operator import policy
from tests.redis import durable_workers
from tests.redis.durable_workers import StartDurable
from tests.redis.helpers import hand_off_now, wait_until

_fixture = pytest.fixture(name="start_durable")(durable_workers.start_durable)
SPEC = policy.ScalingSpec(min_replicas=0, max_replicas=10, jobs_per_replica=4)


def _wanted(app: kubeq.App, current: int) -> int:
    obs = policy.observe(read_stats(app.redis, ["default"]), current=current)
    return policy.recommend(obs, SPEC)


def test_sleeping_and_waiting_jobs_are_not_backlog_for_the_operator(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    worker = start_durable("--concurrency", "8")
    q = app.queue()
    nappers = [q.enqueue(durtasks.napper, f"s{i}", 6.0) for i in range(10)]
    waiters = [q.enqueue(durtasks.approver, f"w{i}", "go:fleet") for i in range(10)]
    jobs = nappers + waiters
    wait_until(lambda: all(j.status() == "sleeping" for j in jobs), what="every job asleep")
    # the worker writes its busy count as its jobs go to sleep, at its next round trip or
    # heartbeat: killed before that, its last count would stand until its record expires
    wait_until(lambda: q.stats().busy_workers == 0, what="the worker to count itself idle")
    worker.stop()
    stats = q.stats()
    assert (stats.backlog, stats.in_flight, stats.delayed, stats.sleeping) == (0, 0, 0, 20)
    assert _wanted(app, current=1) == 0  # nothing to do: the fleet may go to zero
    # the sleeps fall due with no worker to promote them: backlog, so the fleet comes back
    wait_until(lambda: q.stats().backlog == 10, timeout=60, what="the sleeps to fall due")
    assert q.stats().sleeping == 10 and _wanted(app, current=0) >= 1
    assert app.signal("go:fleet", "now") == 10  # the waiters are ready at once
    assert q.stats().backlog == 20
    start_durable("--concurrency", "8")
    assert [j.result(timeout=60) for j in waiters] == ["now"] * 10
    assert [j.result(timeout=60) for j in nappers] == [[1, 1]] * 10
    assert q.stats().sleeping == 0


def test_abort_cancel_and_purge_end_sleeping_jobs(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    start_durable("--concurrency", "8")
    q = app.queue()
    aborted = q.enqueue(durtasks.approver, "ab", "go:ab")
    cancelled = q.enqueue(durtasks.napper, "ca", 600.0)
    purged = [q.enqueue(durtasks.approver, "pu", "go:pu"), q.enqueue(durtasks.napper, "pn", 600)]
    jobs = [aborted, cancelled, *purged]
    wait_until(lambda: all(j.status() == "sleeping" for j in jobs), what="every job asleep")
    assert q.stats().sleeping == 4
    assert aborted.abort() is True
    with pytest.raises(kubeq.JobAborted):
        aborted.result(timeout=5)
    assert cancelled.cancel() is True and cancelled.status() == "cancelled"
    assert q.purge() == 2
    assert [j.status() for j in purged] == ["unknown", "unknown"]
    stats = q.stats()
    assert (stats.sleeping, stats.delayed, stats.backlog) == (0, 0, 0)
    assert r.zcard(q.keys.waiters("go:ab")) == 0 and r.zcard(q.keys.sleeping) == 0
    assert app.signal("go:ab", 1) == 0 and app.signal("go:pu", 1) == 0  # nobody left
    assert aborted.status() == "aborted"
    assert aborted.steps() == {"ask": 1}  # kept with the job's record


def test_a_sleeping_jobs_id_stays_taken(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    start_durable()
    q = app.queue()
    job = q.enqueue_call(durtasks.approver, ("id", "go:id"), job_id="approval-1")
    wait_until(lambda: job.status() == "sleeping", what="the job to wait")
    again = q.enqueue_call(durtasks.approver, ("id2", "go:id"), job_id="approval-1")
    assert again.created is False and job.status() == "sleeping"
    assert app.signal("go:id", "yes") == 1 and job.result(timeout=30) == "yes"


def test_the_result_ttl_covers_the_step_records(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    start_durable()
    q = app.queue()
    job = q.enqueue_call(durtasks.napper, ("ttl", 1.0), result_ttl=2)
    assert r.ttl(q.keys.job(job.id)) == -1  # no TTL while it runs or sleeps
    assert job.result(timeout=60) == [1, 1]
    assert job.steps() and 0 < r.ttl(q.keys.job(job.id)) <= 2
    wait_until(lambda: job.status() == "unknown", what="the record to expire")
    assert job.steps() == {}


def test_a_waiting_parent_is_not_finished_for_its_dependents(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    start_durable("--concurrency", "4")
    q = app.queue()
    parent = q.enqueue(durtasks.approver, "par", "go:par")
    kid = q.enqueue_call(durtasks.child, (1,), depends_on=[parent])
    doomed_parent = q.enqueue(durtasks.approver, "dp", "go:dp")
    doomed = q.enqueue_call(durtasks.child, (2,), depends_on=[doomed_parent])
    wait_until(
        lambda: parent.status() == "sleeping" and doomed_parent.status() == "sleeping",
        what="the parents to wait",
    )
    assert kid.status() == "deferred" and doomed.status() == "deferred"
    assert app.signal("go:par", "ok") == 1
    assert parent.result(timeout=30) == "ok" and kid.result(timeout=30) == 2
    assert doomed_parent.abort() is True  # an aborted parent cancels its dependent
    wait_until(lambda: doomed.status() == "cancelled", what="the dependent to be cancelled")


def test_a_pending_hand_off_skips_a_parent_that_sleeps_again(
    app: kubeq.App, r: redis.Redis, redis_url: str
) -> None:
    """A parent requeued from the dead letters before its hand-off ran, and now sleeping:
    the hand-off finds it live and leaves its dependents waiting."""

    @app.task(name="durable.flows.waits")
    def waits() -> Any:
        return kubeq.wait_for("go:handoff")

    @app.task(name="durable.flows.after")
    def after() -> str:
        return "ran"

    parent = waits.delay()
    kid = after.apply_async(depends_on=[parent])
    drain(app)
    assert parent.status() == "sleeping" and kid.status() == "deferred"
    keys = app.queue().keys
    r.zadd(keys.handoff, {parent.id: 0})  # its earlier end's hand-off, not done yet
    hand_off_now(redis_url, keys, [parent.id])
    assert kid.status() == "deferred"
    assert app.signal("go:handoff", 1) == 1
    drain(app)
    assert parent.result(timeout=5) == 1 and kid.result(timeout=5) == "ran"


def test_many_waiting_jobs_hold_no_slot_and_one_signal_wakes_them_all(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    worker = start_durable("--concurrency", "16")
    q = app.queue()
    jobs = q.enqueue_many([q.prepare(durtasks.approver, f"m{i}", "go:many") for i in range(500)])
    wait_until(lambda: q.stats().sleeping == 500, timeout=300, what="500 jobs waiting")
    stats = q.stats()
    assert (stats.backlog, stats.in_flight) == (0, 0)
    # the worker holds nothing: it says so on its round trip after the last job suspended
    # (a job is "sleeping" as its task records it, a moment before the worker hears of it)
    wait_until(lambda: q.stats().busy_workers == 0, timeout=30, what="the worker holds nothing")
    assert _wanted(app, current=1) == 0
    worker.stop()
    assert app.signal("go:many", "go") == 500  # one script call wakes every waiter
    assert q.stats().backlog == 500 and _wanted(app, current=0) >= 1
    start_durable("--concurrency", "16")
    assert all(j.result(timeout=300) == "go" for j in jobs)
