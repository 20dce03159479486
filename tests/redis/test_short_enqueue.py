"""A one-call enqueue's short path (``kubeq.client.short``), against a real Redis: a
``delay()`` after the first of a task sends the very call the whole plan lays out, writes the
same record, and its job runs; and wherever the plan would do something else (a worker pool,
partitions, a pinned version, a forced queue, replicas to wait for, eager mode) the call takes
the whole plan."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import qtasks
import redis

import kubeq
from kubeq.client import pools
from kubeq.client.enqueue import plan_enqueue
from kubeq.errors import NotReplicated
from kubeq.store import scripts
from kubeq.store.keys import QueueKeys, queues_key
from kubeq.store.versions import VERSION_ENV
from kubeq.testing import eager
from tests.redis.workers import StartWorker

Sent = list[tuple[list[Any], list[Any]]]


def fresh(tag: str) -> str:
    return f"short-{tag}-{uuid.uuid4().hex[:6]}"


def watch(monkeypatch: pytest.MonkeyPatch) -> tuple[list[object], Sent]:
    """The plans made (``App._plan``) and the script calls sent (keys, args), from now on."""
    plans: list[object] = []
    sent: Sent = []
    plan, evalsha = kubeq.App._plan, scripts._evalsha

    def planning(self: kubeq.App, *a: Any, **k: Any) -> Any:
        plans.append(a)
        return plan(self, *a, **k)

    def sending(client: Any, sha: str, keys: list[Any], args: list[Any]) -> Any:
        sent.append((list(keys), list(args)))
        return evalsha(client, sha, keys, args)

    monkeypatch.setattr(kubeq.App, "_plan", planning)
    monkeypatch.setattr(scripts, "_evalsha", sending)
    return plans, sent


def masked(args: list[Any]) -> list[Any]:
    """A call's arguments without what is new at each call: the send token and the job id."""
    return [*args[:2], "token", *args[3:-2], "id", args[-1]]


@pytest.mark.also_redis_cluster
def test_a_delay_after_the_first_sends_what_the_plan_lays_out_and_its_job_runs(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = fresh("same")
    add = app.task(
        name="qtasks.add",
        queue=q,
        priority=7,
        result_ttl=120,
        max_deliveries=3,
        rate_limit="1000/s",
        concurrency_limit=50,
        tags=["short"],
        expires=600,
    )(qtasks.add.func)
    plans, sent = watch(monkeypatch)
    first = add.delay(1, 2)
    second = add.delay(3, 4)
    third = add.delay(3, 4)
    assert len(plans) == 1, "the second and third delay() made a plan: the short path was not taken"
    # the last two sends are theirs (the first call may go twice: NOSCRIPT, then loaded)
    assert second.created and third.created and second.id != third.id
    (keys2, args2), (_, args3) = sent[-2:]
    assert [args2[-2], args3[-2]] == [second.id, third.id]
    # the very call the whole plan lays out for the same call (the plan touches no network)
    made = app._plan([add.s(3, 4)], None).calls
    assert len(made) == 1
    assert [str(k) for k in keys2[:-1]] == [str(k) for k in made[0][1]]  # less the fence
    assert masked(args2) == masked(made[0][2]) == masked(args3)
    # the same record as the plan's job: every field the same but the payload and the time
    ka, kb = (QueueKeys.of(q, app.prefix).job(j.id) for j in (first, second))
    a, b = r.hgetall(ka), r.hgetall(kb)
    assert set(a) == set(b)
    for field in set(a) - {b"payload", b"enqueued_at", b"expires_at"}:
        assert a[field] == b[field], field
    assert {b"priority", b"result_ttl", b"max_deliveries", b"tags", b"ctl", b"cl_key"} <= set(b)
    start_worker("--queue", q)
    assert [first.result(timeout=30), second.result(timeout=30), third.result(timeout=30)] == [
        3,
        7,
        7,
    ]


def routed(
    app: kubeq.App, monkeypatch: pytest.MonkeyPatch, enqueue: Callable[[], kubeq.Job]
) -> tuple[kubeq.Job, int]:
    """A job enqueued after the task's first delay() (so the short path could be taken), and
    how many plans that enqueue made."""
    plans, _ = watch(monkeypatch)
    job = enqueue()
    return job, len(plans)


def test_a_pool_declared_after_the_first_delay_takes_the_next_one(
    app: kubeq.App, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = fresh("pool")
    app.pools.ttl = 0  # the table read at every enqueue, as an App sees it after its ttl
    task = app.task(name="qtasks.worker_pid", queue=q)(qtasks.worker_pid.func)
    assert task.delay().queue == q
    pools.publish(r, app.prefix, "ns/tq", [q], {"fast": ["qtasks.worker_pid"]})
    job, plans = routed(app, monkeypatch, task.delay)
    assert (job.queue, plans) == (f"{q}@fast", 1)
    assert app.queue(f"{q}@fast").stats().backlog == 1


def test_a_queue_planned_but_never_sent_to_is_registered_by_the_first_send(
    app: kubeq.App, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan made without a send (the pools table's read failed after it) keeps its layout
    on the template; the next delay() still registers the queue, as only the plan does."""
    q = fresh("known")
    task = app.task(name="qtasks.add", queue=q)(qtasks.add.func)
    app._plan([task.s(1, 1)], None)
    job, plans = routed(app, monkeypatch, lambda: task.delay(2, 2))
    assert (job.queue, plans) == (q, 1)
    assert r.sismember(queues_key(app.prefix), q)


def test_partitions_a_pin_and_a_forced_queue_take_the_whole_plan(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = fresh("route")
    parted = kubeq.App(redis_url, partitions={q: 2})
    try:
        task = parted.task(name="qtasks.add", queue=q)(qtasks.add.func)
        task.delay(1, 1)
        job, plans = routed(parted, monkeypatch, lambda: task.delay(2, 2))
        assert job.queue in (f"{q}#0", f"{q}#1") and plans == 1
        lone = fresh("lone")  # a queue of the same App that is not partitioned: short
        other = parted.task(name="qtasks.worker_pid", queue=lone)(qtasks.worker_pid.func)
        other.delay()
        job, plans = routed(parted, monkeypatch, other.delay)
        assert (job.queue, plans) == (lone, 0)
    finally:
        parted.close()
    app = kubeq.App(redis_url)
    try:
        plain = app.task(name="qtasks.worker_pid", queue=q)(qtasks.worker_pid.func)
        plain.delay()  # the queue itself is registered: only the pin can send a job elsewhere
        pinned = app.task(name="qtasks.add", queue=q, pin_version=True)(qtasks.add.func)
        monkeypatch.setenv(VERSION_ENV, "v7")
        pinned.delay(1, 1)
        job, plans = routed(app, monkeypatch, lambda: pinned.delay(2, 2))
        assert (job.queue, plans) == (f"{q}~v7", 1)
        # a call forced onto another queue, then a delay(): each goes where its plan says
        other = fresh("other")
        job, plans = routed(app, monkeypatch, lambda: app.enqueue_many([plain.s()], queue=other)[0])
        assert (job.queue, plans) == (other, 1)
        job, plans = routed(app, monkeypatch, plain.delay)
        assert (job.queue, plans) == (q, 1)
        job, plans = routed(app, monkeypatch, plain.delay)  # the plan kept again: short
        assert (job.queue, plans) == (q, 0)
        # a callback's hand-off plans its calls with ``once``: the next delay() is planned
        plan_enqueue([plain.s()], prefix=app.prefix, defaults_for=app.defaults_for, once=True)
        job, plans = routed(app, monkeypatch, plain.delay)
        assert (job.queue, plans) == (q, 1)
    finally:
        app.close()


def test_replicas_to_wait_for_and_eager_mode_take_the_whole_plan(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = fresh("wait")
    waiting = kubeq.App(redis_url, wait_replicas=1, wait_timeout=0.05)  # no replica answers
    try:
        task = waiting.task(name="qtasks.add", queue=q)(qtasks.add.func)
        for _ in range(2):  # the second as the first: it waits, and says no replica has it
            with pytest.raises(NotReplicated):
                task.delay(1, 1)
        assert waiting.queue(q).stats().backlog == 2
    finally:
        waiting.close()
    app = kubeq.App(redis_url)
    try:
        task = app.task(name="qtasks.add", queue=q)(qtasks.add.func)
        task.delay(1, 1)
        with eager(app):
            job, plans = routed(app, monkeypatch, lambda: task.delay(20, 22))
        assert plans == 1 and job.result(timeout=5) == 42
        assert app.queue(q).stats().backlog == 3  # the eager job never went to Redis
    finally:
        app.close()
