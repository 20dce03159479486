"""An enqueue call sent again after its reply was lost, and what the handles say.

The client sends a call again, as it was, when the connection dies before the reply arrives
(``scripts.run_pipeline``, ``stream.Stream``, redis-py's retries). Here the resend is made
by hand with ``send.send`` on the same plan, after a real worker ran the jobs of the first
send: the resend must write nothing, and answer as the first send did. The faults tier
(tests/faults/test_bulk_resend.py) makes the same resend happen by cutting a real connection.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import qtasks
import redis

import kubeq
from kubeq.client.enqueue import RESEND_WINDOW, EnqueuePlan, plan_enqueue
from kubeq.client.send import send
from kubeq.store.keys import QueueKeys
from tests.redis.clientapi import AsyncApi, SyncApi
from tests.redis.workers import StartWorker


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, app: kubeq.App) -> Iterator[SyncApi]:
    if request.param == "sync":
        yield SyncApi(app)
        return
    client = AsyncApi(app)
    yield client
    client.close()


def _plan(app: kubeq.App, calls: list[kubeq.Call]) -> EnqueuePlan:
    return plan_enqueue(calls, prefix=app.prefix, defaults_for=app.defaults_for)


def _flags(replies: list[list[int]]) -> list[int]:
    return [flag for reply in replies for flag in reply]


def test_the_handles_say_which_jobs_the_call_created(app: kubeq.App, api: SyncApi) -> None:
    add = app.task(name="qtasks.add")(qtasks.add.func)
    live = api.apply_async(add, (0, 0), job_id="live", delay=3600)
    assert live.created is True
    assert api.apply_async(add, (1, 1), job_id="live").created is False  # one call
    calls = [
        add.s(1, 1),
        add.s(2, 2).set(job_id="live"),
        add.s(3, 3).set(job_id="twice"),
        add.s(4, 4).set(job_id="twice"),
        add.s(5, 5).set(queue="other"),
        add.s(6, 6).set(queue="other", job_id="live"),  # another queue: another job
    ]
    jobs = api.enqueue_many(calls)
    assert [j.created for j in jobs] == [True, False, True, False, True, True]
    assert api.info(jobs[1]).payload == live.info().payload  # the live one is kept
    assert app.job("live").created is None  # a handle no enqueue returned


@pytest.mark.parametrize("result_ttl", [None, 5])
def test_a_one_job_call_sent_again_after_its_job_finished_writes_nothing(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, result_ttl: int | None
) -> None:
    """The reply of a one-job call is lost; its job runs and finishes; the call comes again.
    The finished job stays as it is (not replaced, not run again) and the resend answers
    'enqueued' as the first send did; with a result TTL shorter than a resend may take, the
    job's hash may be gone by then: the resend still writes nothing."""
    add = app.task(name="qtasks.add")(qtasks.add.func)
    call = add.s(20, 22).set(job_id="once", result_ttl=result_ttl)
    plan = _plan(app, [call])
    assert _flags(send(app.redis, plan)) == [1]
    start_worker("--queue", "default")
    job = app.job("once")
    assert job.result(timeout=30) == 42
    before = job.info()
    assert _flags(send(app.redis, plan)) == [1]
    after = job.info()
    assert (after.status, after.result, after.finished_at) == (
        "finished",
        before.result,
        before.finished_at,
    )
    keys = QueueKeys.of("default", app.prefix)
    assert r.zcard(keys.ready) == 0
    if result_ttl is not None:  # its result expired before the resend came
        r.delete(keys.job("once"), keys.done("once"))
        assert _flags(send(app.redis, plan)) == [1]
        assert not r.exists(keys.job("once")) and r.zcard(keys.ready) == 0
    # a new call with the same id is another enqueue: it replaces the ended job
    (again,) = app.enqueue_many([add.s(1, 2).set(job_id="once")])
    assert again.created is True and again.result(timeout=30) == 3


def test_a_bulk_call_sent_again_gets_its_first_reply_and_writes_nothing(
    app: kubeq.App, r: redis.Redis
) -> None:
    """A call of several jobs leaves a receipt of its reply for ``RESEND_WINDOW`` seconds:
    whatever became of its jobs meanwhile (ended, replaced by another call, expired), its
    resend answers the first reply and writes nothing."""
    add = app.task(name="qtasks.add")(qtasks.add.func)
    keys = QueueKeys.of("default", app.prefix)
    app.enqueue_many([add.s(0, 0).set(job_id="old", delay=3600)])
    ids = ["a", "b", "old", "c", "a"]
    plan = _plan(app, [add.s(i, i).set(job_id=job_id) for i, job_id in enumerate(ids)])
    first = send(app.redis, plan)
    assert _flags(first) == [1, 1, 0, 1, 0]
    (_, _, args) = plan.calls[0]
    receipt = keys.base + "sent:" + args[2]
    assert 0 < r.ttl(receipt) <= RESEND_WINDOW
    # meanwhile: a ended, b replaced by another call after it ended, c's hash expired
    r.hset(keys.job("a"), "status", "finished")
    r.zrem(keys.ready, "a", "b", "c")
    r.hset(keys.job("b"), "status", "cancelled")
    app.enqueue_many([add.s(7, 7).set(job_id="b")])
    r.delete(keys.job("c"))
    written = {k: r.hgetall(k) for k in map(keys.job, ["a", "b", "old"])}
    assert send(app.redis, plan) == first
    assert {k: r.hgetall(k) for k in written} == written
    assert not r.exists(keys.job("c"))
    assert [m.decode() for m in r.zrange(keys.ready, 0, -1)] == ["b"]


def test_a_one_job_call_resent_after_another_call_replaced_its_ended_job(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    """A one-job call's reply is lost; its job finishes; another call with the same id
    replaces it (an ended job may be replaced) and finishes too; then the first call comes
    again. It must find its answer (the job it created) and leave the second job alone."""
    add = app.task(name="qtasks.add")(qtasks.add.func)
    plan = _plan(app, [add.s(1, 1).set(job_id="same")])
    assert _flags(send(app.redis, plan)) == [1]
    start_worker("--queue", "default")
    assert app.job("same").result(timeout=30) == 2
    (second,) = app.enqueue_many([add.s(2, 2).set(job_id="same")])
    assert second.created is True and second.result(timeout=30) == 4
    before = second.info()
    assert _flags(send(app.redis, plan)) == [1]
    after = second.info()
    assert (after.status, after.result, after.finished_at) == (
        "finished",
        before.result,
        before.finished_at,
    )


def test_a_one_job_call_resent_after_its_job_was_purged_does_not_bring_it_back(
    app: kubeq.App,
) -> None:
    """The reply of a one-job call is lost; the queue is purged (its job deleted); the call
    comes again: the purge stands (the job is not enqueued again), and the resend answers
    'enqueued' as the first send did."""
    add = app.task(name="qtasks.add")(qtasks.add.func)
    plan = _plan(app, [add.s(1, 2).set(job_id="purged", delay=3600)])
    assert _flags(send(app.redis, plan)) == [1]
    assert app.queue("default").purge() == 1
    assert app.job("purged").status() == "unknown"
    assert _flags(send(app.redis, plan)) == [1]
    assert app.job("purged").status() == "unknown", "the resend brought a purged job back"
