"""Durable steps, sleeps and waits with real worker processes on a real Redis: a finished
step runs once across a SIGKILL and a retry; a zombie cannot record a step; a sleep frees
the worker (another job runs meanwhile) and the job continues from its steps; wait_for wakes
on a signal sent after or before it waits, and times out with an exception it catches; a
step too large is refused naming the limit (docs/durable.md)."""

from __future__ import annotations

import asyncio
import signal

import durtasks
import pytest
import redis

import kubeq
from kubeq import defaults
from tests.redis import durable_workers
from tests.redis.durable_workers import StartDurable
from tests.redis.helpers import wait_until
from tests.redis.workers import run

_fixture = pytest.fixture(name="start_durable")(durable_workers.start_durable)


def _eff(r: redis.Redis, tag: str, name: str) -> int:
    return int(r.get(f"test:eff:{tag}:{name}") or 0)


def test_a_step_runs_once_across_a_sigkill_and_a_retry(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    first = start_durable("--lease", "2")
    job = app.queue().enqueue(durtasks.three_steps, "k")
    wait_until(lambda: _eff(r, "k", "two") == 1, what="the job to be inside step two")
    first.signal(signal.SIGKILL)  # inside step two: step one is recorded, two is not
    first.wait()
    assert job.steps() == {"one": 1}
    start_durable("--lease", "2")
    r.set("test:gate:k", "1")
    # run 2 (after the kill) passes step one, runs two again (it was never recorded), then
    # fails once; run 3 (the retry) runs only step three
    assert job.result(timeout=60) == [1, 2, 1]
    assert [_eff(r, "k", s) for s in ("one", "two", "three")] == [1, 2, 1]
    assert job.steps() == {"one": 1, "three": 1, "two": 2}
    assert job.info().attempts == 2


def test_a_sigterm_hand_back_keeps_the_recorded_steps(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    first = start_durable("--drain-timeout", "1")
    job = app.queue().enqueue(durtasks.three_steps, "h")
    wait_until(lambda: _eff(r, "h", "two") == 1, what="the job to be inside step two")
    first.signal(signal.SIGTERM)  # drains 1 s, then hands the job back (no attempt)
    assert first.wait() == 0
    assert job.status() == "queued" and job.steps() == {"one": 1}
    r.set("test:failed:h", "1")  # no failure this time: the next run ends it
    r.set("test:gate:h", "1")
    start_durable()
    assert job.result(timeout=60) == [1, 2, 1]
    assert [_eff(r, "h", s) for s in ("one", "two", "three")] == [1, 2, 1]
    assert job.info().attempts == 1


def test_a_zombie_cannot_record_a_step(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    zombie = start_durable("--lease", "1")
    job = app.queue().enqueue(durtasks.zombie_step, "z", 2.0)
    wait_until(lambda: r.llen("test:started:z") == 1, what="the step to start")
    zombie.signal(signal.SIGSTOP)  # frozen inside its step: its lease expires
    rescuer = start_durable("--lease", "1")
    assert job.result(timeout=60) == rescuer.pid
    zombie.signal(signal.SIGCONT)  # the zombie's step returns and tries to record: refused
    wait_until(lambda: r.llen("test:refused:z") == 1, what="the zombie's record to be refused")
    refused = (r.lindex("test:refused:z", 0) or b"").decode()
    assert refused.startswith(f"{zombie.pid} job {job.id}") and "no longer holds" in refused
    assert job.steps() == {"slow": rescuer.pid}


def test_a_sleep_frees_the_worker_and_the_job_continues_from_its_steps(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    start_durable("--concurrency", "1")
    job = app.queue().enqueue(durtasks.napper, "n", 3.0)
    wait_until(lambda: job.status() == "sleeping", what="the job to sleep")
    info = job.info()
    assert info.wait_step == "~sleep:1" and info.sleep_until is not None
    stats = app.queue().stats()
    assert (stats.sleeping, stats.in_flight, stats.backlog, stats.delayed) == (1, 0, 0, 0)
    # the only slot is free: another job runs while the first sleeps
    other = app.queue().enqueue(durtasks.add, 1, 2)
    assert other.result(timeout=30) == 3
    assert job.status() == "sleeping"
    assert job.result(timeout=60) == [1, 1]
    assert [_eff(r, "n", s) for s in ("before", "after")] == [1, 1]
    steps = job.steps()
    assert set(steps) == {"before", "after", "~sleep:1"}
    info = job.info()
    assert info.attempts == 1 and info.status == "finished"
    shown = run(app.redis_url, "job", job.id)
    assert "step before" in shown.stdout and "~sleep:1" in shown.stdout


def test_a_process_pool_task_sleeps_and_continues(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    worker = start_durable()
    job = app.queue().enqueue(durtasks.child_napper, "p", 1.0)
    wait_until(lambda: job.status() == "sleeping", timeout=60, what="the job to sleep")
    before, after, pid = job.result(timeout=60)
    assert (before, after) == (1, 1) and pid != worker.pid  # ran in a pool child
    assert [_eff(r, "p", s) for s in ("before", "after")] == [1, 1]


@pytest.mark.also_redis_cluster
def test_wait_for_a_signal_sent_after_and_before_the_wait(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    start_durable()
    after = app.queue().enqueue(durtasks.approver, "a", "approve:a")
    wait_until(lambda: after.status() == "sleeping", what="the job to wait")
    info = after.info()
    assert info.waiting_for == "approve:a" and info.sleep_until is None
    assert app.queue().stats().sleeping == 1
    assert app.signal("approve:a", {"ok": True}) == 1
    assert after.result(timeout=30) == {"ok": True}
    assert [_eff(r, "a", s) for s in ("ask", "decide")] == [1, 1]
    # sent before any job waits: kept (TTL), so the wait returns it without suspending
    assert app.signal("approve:b", {"ok": "early"}) == 0
    early = app.queue().enqueue(durtasks.approver, "b", "approve:b")
    assert early.result(timeout=30) == {"ok": "early"}
    assert r.hget(app.queue().keys.job(early.id), "slept_at") is None  # never suspended
    assert 0 < r.ttl(app.queue().keys.signal("approve:b")) <= defaults.SIGNAL_TTL_SECONDS


def test_the_cli_signals_and_a_wait_times_out_with_an_exception(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    start_durable()
    job = app.queue().enqueue(durtasks.approver, "c", "approve:c")
    wait_until(lambda: job.status() == "sleeping", what="the job to wait")
    shown = run(app.redis_url, "job", job.id)
    assert "waiting for signal 'approve:c'" in shown.stdout, shown.stdout
    sent = run(app.redis_url, "signal", "approve:c", "--data", '{"by": "cli"}')
    assert sent.returncode == 0 and "woke 1 job" in sent.stdout, sent.stderr
    assert job.result(timeout=30) == {"by": "cli"}
    bad = run(app.redis_url, "signal", "approve:c", "--data", "{nope")
    assert bad.returncode != 0 and "not JSON" in bad.stderr
    late = app.queue().enqueue(durtasks.approver, "t", "approve:t", 1.0)
    result = late.result(timeout=60)
    assert "timed out" in result["timed_out"] and "approve:t" in result["timed_out"]
    assert late.steps()["~wait:approve:t"] == {"timeout": True}
    assert app.signal("approve:t", 1) == 0  # too late: it woke no one


def test_mode_one_wakes_exactly_one_waiter(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    start_durable("--concurrency", "4")
    jobs = [app.queue().enqueue(durtasks.approver, f"o{i}", "approve:one") for i in range(3)]
    wait_until(lambda: all(j.status() == "sleeping" for j in jobs), what="three waiters")
    assert app.signal("approve:one", "first", mode="one") == 1
    wait_until(lambda: sum(j.status() == "finished" for j in jobs) == 1, what="one to end")
    assert sum(j.status() == "sleeping" for j in jobs) == 2
    assert app.signal("approve:one", "rest") == 2
    assert sorted(j.result(timeout=30) for j in jobs) == ["first", "rest", "rest"]


def test_async_tasks_step_sleep_and_wait(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    start_durable()
    job = app.queue().enqueue(durtasks.async_napper, "as", 1.0, "go:as")
    wait_until(lambda: job.info().waiting_for == "go:as", timeout=60, what="the wait")

    async def send() -> int:
        return await app.asignal("go:as", [1, 2])

    assert asyncio.run(send()) == 1
    assert job.result(timeout=30) == [1, [1, 2]]
    assert _eff(r, "as", "before") == 1


def test_a_step_too_large_is_refused_naming_the_limit(
    app: kubeq.App, start_durable: StartDurable
) -> None:
    start_durable()
    job = app.queue().enqueue(durtasks.big_step, defaults.MAX_STEP_BYTES + 10)
    message = job.result(timeout=30)
    assert "MAX_STEP_BYTES" in message and "step 'big'" in message
