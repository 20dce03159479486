"""The client API against a real Redis: enqueue, results, options, bulk, stats, cancel.

Every test runs twice through the ``api`` fixture: with the sync API (``delay``, ``enqueue``,
``result``...) and with its async twins (``adelay``, ``aenqueue``, ``aresult``...) on one
event loop. Tests only the async API has are in test_async_client.py.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest
import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.clientapi import AsyncApi, SyncApi
from tests.redis.helpers import evalsha_calls, wait_until
from tests.redis.workers import StartWorker


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, app: kubeq.App) -> Iterator[SyncApi]:
    if request.param == "sync":
        yield SyncApi(app)
        return
    client = AsyncApi(app)
    yield client
    client.close()


def test_celery_style_delay_and_result(
    start_worker: StartWorker, redis_url: str, monkeypatch: pytest.MonkeyPatch, api: SyncApi
) -> None:
    monkeypatch.setenv("KUBEQ_REDIS_URL", redis_url)
    app = kubeq.App()  # the URL comes from KUBEQ_REDIS_URL
    api = type(api)(app)  # the same API form, on this App

    @app.task(name="qtasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    start_worker("--queue", "default")
    job = api.delay(add, 4, 4)
    assert api.result(job, timeout=20) == 8
    assert api.status(job) == "finished"
    info = api.info(job)
    assert info.attempts == 1 and info.task == "qtasks.add" and info.worker
    if isinstance(api, AsyncApi):
        api.close()


def test_apply_async_options(app: kubeq.App, api: SyncApi, start_worker: StartWorker) -> None:
    add = app.task(name="qtasks.add")(qtasks.add.func)  # on this test's App
    job = api.apply_async(add, (2, 3), queue="opts", priority=9, job_id="sum-2-3")
    assert (job.queue, job.id) == ("opts", "sum-2-3")
    assert api.info(job).priority == 9
    with pytest.raises(ValueError, match="priority must be an integer from 0"):
        api.apply_async(add, (2, 3), priority=12)
    start_worker("--queue", "opts")
    assert api.result(job, timeout=20) == 5


def test_rq_style_enqueue_by_function_or_name(api: SyncApi, start_worker: StartWorker) -> None:
    start_worker("--queue", "default")
    assert api.result(api.enqueue("default", qtasks.add, 1, 2), timeout=20) == 3
    assert api.result(api.enqueue("default", "qtasks.add", x=5, y=6), timeout=20) == 11
    assert api.result(api.enqueue("default", qtasks.async_add, 2, 2), timeout=20) == 4


def test_result_waits_without_polling(api: SyncApi, start_worker: StartWorker) -> None:
    worker = start_worker("--queue", "default")
    assert api.result(api.enqueue("default", qtasks.add, 0, 0), timeout=20) == 0  # worker is up
    job = api.enqueue("default", qtasks.run_and_record, "slow", 2.0)
    with api.commands() as sent:
        assert api.result(job, timeout=30) == worker.pid
    # read, block on the done-list until the job ends, read again: a poller would have sent
    # dozens of commands during the 2 s the job runs
    assert sent.count("BLMOVE") == 1, sent
    assert len(sent) <= 3, sent


def test_enqueue_many_is_one_round_trip(api: SyncApi, r: redis.Redis) -> None:
    api.enqueue("bulk", qtasks.add, 0, 0)  # the queue registry write happens once
    before = evalsha_calls(r)
    jobs = api.enqueue_many([qtasks.add.s(i, i) for i in range(500)], queue="bulk")
    assert evalsha_calls(r) - before == 1
    assert len({j.id for j in jobs}) == 500
    assert api.stats("bulk").backlog == 501


def test_enqueue_many_across_queues_keeps_order(api: SyncApi) -> None:
    calls = [qtasks.add.s(i, 0).set(queue=("a", "b")[i % 2]) for i in range(10)]
    jobs = api.enqueue_many(calls)
    assert [j.queue for j in jobs] == [("a", "b")[i % 2] for i in range(10)]
    assert api.stats("a").backlog == 5 and api.stats("b").backlog == 5


def test_unserializable_argument_fails_in_the_caller_and_enqueues_nothing(
    app: kubeq.App, api: SyncApi
) -> None:
    with pytest.raises(kubeq.SerializationError, match="argument 'y'"):
        api.enqueue("default", qtasks.add, 1, y={1, 2})
    add = app.task(name="qtasks.add")(qtasks.add.func)
    with pytest.raises(kubeq.SerializationError, match="argument 0"):
        api.delay(add, float("nan"), 1)
    assert api.stats("default").backlog == 0


def test_priorities_hold_while_jobs_wait(
    app: kubeq.App, api: SyncApi, r: redis.Redis, start_worker: StartWorker
) -> None:
    q = app.queue("prio")
    q.pause()
    for priority, value in [(0, "low"), (5, "mid-1"), (9, "high"), (5, "mid-2"), (0, "low-2")]:
        api.enqueue_call("prio", qtasks.record_order, ("p", value), priority=priority)
    start_worker("--queue", "prio", "--concurrency", "1")
    time.sleep(0.5)
    assert r.llen("test:order:p") == 0  # paused: nothing taken
    q.resume()
    wait_until(lambda: r.llen("test:order:p") == 5, what="all five jobs")
    order = [v.decode() for v in r.lrange("test:order:p", 0, -1)]
    assert order == ["high", "mid-1", "mid-2", "low", "low-2"]


def test_queue_order_is_priority_order(
    app: kubeq.App, api: SyncApi, r: redis.Redis, start_worker: StartWorker
) -> None:
    for name in ("low", "high"):
        app.queue(name).pause()
        for i in range(3):
            api.enqueue(name, qtasks.record_order, "q", f"{name}-{i}")
        app.queue(name).resume()
    start_worker("--queue", "high", "--queue", "low", "--concurrency", "1")
    wait_until(lambda: r.llen("test:order:q") == 6, what="six jobs")
    order = [v.decode() for v in r.lrange("test:order:q", 0, -1)]
    assert order == ["high-0", "high-1", "high-2", "low-0", "low-1", "low-2"]


def test_delayed_job_waits_for_its_time(api: SyncApi, start_worker: StartWorker) -> None:
    start_worker("--queue", "default")
    job = api.enqueue_call("default", qtasks.add, (1, 1), delay=1.5)
    assert api.status(job) == "scheduled"
    stats = api.stats("default")
    assert (stats.delayed, stats.backlog) == (1, 0)
    assert api.result(job, timeout=20) == 2
    info = api.info(job)
    assert info.started_at is not None and info.enqueued_at is not None
    assert info.started_at - info.enqueued_at >= 1.4  # it did not run early


def test_job_id_deduplicates_live_jobs(api: SyncApi) -> None:
    first = api.enqueue_call("default", qtasks.add, (1, 2), job_id="invoice-42")
    second = api.enqueue_call("default", qtasks.add, (3, 4), job_id="invoice-42")
    assert first == second
    assert api.stats("default").backlog == 1
    assert "[1,2]" in api.info(first).payload  # the first call is the one kept


def test_cancel_a_waiting_job(api: SyncApi) -> None:
    job = api.enqueue("default", qtasks.add, 1, 1)
    assert api.cancel(job) is True
    assert api.status(job) == "cancelled"
    with pytest.raises(kubeq.JobCancelled):
        api.result(job, timeout=1)
    assert api.stats("default").backlog == 0
    assert api.cancel(job) is False
    with pytest.raises(kubeq.JobNotFound):
        api.cancel(api.app.job("no-such-job"))


def test_result_timeout_and_unknown_job(app: kubeq.App, api: SyncApi) -> None:
    job = api.enqueue("nobody-consumes", qtasks.add, 1, 1)
    with pytest.raises(kubeq.ResultTimeout):
        api.result(job, timeout=0.3)
    with pytest.raises(kubeq.JobNotFound):
        api.result(app.job("no-such-job"), timeout=1)


def test_stats_in_one_round_trip(
    app: kubeq.App, api: SyncApi, r: redis.Redis, start_worker: StartWorker
) -> None:
    q = app.queue("st")
    api.enqueue_many([qtasks.add.s(1, 1)] * 3, queue="st")
    api.enqueue_call("st", qtasks.add, (1, 1), delay=60)
    time.sleep(0.3)
    before = evalsha_calls(r)
    s = api.stats("st")
    assert evalsha_calls(r) - before == 1
    assert (s.backlog, s.delayed, s.in_flight, s.dead, s.paused) == (3, 1, 0, 0, False)
    assert s.oldest_ready_age >= 0.2
    worker = start_worker("--queue", "st", "--concurrency", "2")
    job = api.enqueue("st", qtasks.run_and_record, "busy", 3.0)
    wait_until(lambda: api.status(job) == "active", what="the slow job to start")
    s = api.stats("st")
    assert s.live_workers == 1 and s.busy_workers == 1 and s.in_flight >= 1
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert q.stats().live_workers == 0  # a clean exit leaves the worker set


def test_many_waiters_on_one_result(app: kubeq.App, start_worker: StartWorker) -> None:
    job = app.queue().enqueue(qtasks.run_and_record, "waiters", 0.5)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(job.result(timeout=30))) for _ in range(5)
    ]
    for t in threads:
        t.start()
    start_worker("--queue", "default")
    for t in threads:
        t.join(40)
    assert len(results) == 5 and len(set(results)) == 1


def test_one_bulk_enqueue_checks_each_id_against_redis_and_against_itself(
    app: kubeq.App, r: redis.Redis
) -> None:
    """enqueue.lua asks Redis once per group whether any of its ids has a key, and looks at
    each job only when one does: an id given twice in one call, an id already live, an ended
    one and garbage under an id are each handled as when the jobs come one call at a time."""
    add = app.task(name="qtasks.add")(qtasks.add.func)
    keys = QueueKeys.of("default", app.prefix)
    twice = app.enqueue_many([add.s(1, 1).set(job_id="twice"), add.s(2, 2).set(job_id="twice")])
    assert [j.id for j in twice] == ["twice", "twice"]
    assert "[1,1]" in twice[0].info().payload and app.queue().stats().backlog == 1

    live = app.enqueue_many([add.s(3, 3).set(job_id="live")])[0]
    r.hset(keys.job("ended"), mapping={"status": "finished", "result": "7"})
    r.set(keys.job("junk"), b"written by hand")
    calls = [add.s(i, i) for i in range(5)]
    calls[1] = calls[1].set(job_id="live")
    calls[2] = calls[2].set(job_id="ended")
    calls[3] = calls[3].set(job_id="junk")
    jobs = app.enqueue_many(calls)
    assert "[3,3]" in live.info().payload  # the live job is kept as it was
    assert jobs[2].status() == "queued" and "[2,2]" in jobs[2].info().payload  # replaced
    assert jobs[3].status() == "queued" and r.get(keys.base + "garbage:junk") == b"written by hand"
    assert r.zcard(keys.ready) == 1 + 1 + 4  # twice, live, and the four new or replaced
    assert {m.decode() for m in r.zrange(keys.ready, 0, -1)} >= {j.id for j in jobs}


def test_a_bulk_enqueue_of_several_batches_is_written_while_it_is_laid_out(
    app: kubeq.App, r: redis.Redis
) -> None:
    """More than one batch (ENQUEUE_BATCH jobs) goes to Redis batch by batch while the rest
    is laid out: every job arrives once, in order, on its queue; a script Redis forgot is
    loaded again; a call refused at the end leaves nothing enqueued."""
    from kubeq.client.enqueue import ENQUEUE_BATCH

    add = app.task(name="qtasks.add")(qtasks.add.func)
    n = 2 * ENQUEUE_BATCH + 7
    r.script_flush()  # the first batch is answered NOSCRIPT: loaded, then sent again
    calls = [add.s(i, 0).set(queue="bulk-b") if i % 3 == 0 else add.s(i, 0) for i in range(n)]
    jobs = app.enqueue_many(calls)
    assert [j.queue for j in jobs] == [c.queue or "default" for c in calls]
    assert len({j.id for j in jobs}) == n
    on_b = [j for j in jobs if j.queue == "bulk-b"]
    for name, mine in (("bulk-b", on_b), ("default", [j for j in jobs if j.queue != "bulk-b"])):
        keys = QueueKeys.of(name, app.prefix)
        assert [m.decode() for m in r.zrange(keys.ready, 0, -1)] == [j.id for j in mine]
    assert "[3,0]" in on_b[1].info().payload
    assert {b"default", b"bulk-b"} <= r.smembers(f"{app.prefix}:queues")

    before = r.dbsize()
    bad = [add.s(i, 0) for i in range(n)]
    bad[-1] = add.s(object(), 0)  # not JSON: refused before any batch is written
    with pytest.raises(kubeq.SerializationError):
        app.enqueue_many(bad)
    assert r.dbsize() == before


def test_a_bulk_enqueue_refused_by_a_script_raises_and_leaves_the_client_usable(
    app: kubeq.App, r: redis.Redis
) -> None:
    from kubeq.client.enqueue import ENQUEUE_BATCH

    add = app.task(name="qtasks.add")(qtasks.add.func)
    r.set(QueueKeys.of("broken", app.prefix).ready, b"not a sorted set")
    with pytest.raises(redis.ResponseError, match="ready"):
        app.enqueue_many([add.s(i, 0).set(queue="broken") for i in range(ENQUEUE_BATCH + 1)])
    jobs = app.enqueue_many([add.s(i, 0) for i in range(ENQUEUE_BATCH + 1)])
    assert app.queue().stats().backlog == len(jobs)


def test_a_bulk_enqueue_on_a_connection_redis_closed_is_sent_again(
    app: kubeq.App, r: redis.Redis
) -> None:
    """The connection a thread keeps between enqueues was closed by Redis (a restart, a
    timeout, CLIENT KILL): the streamed batches go out again through redis-py's pipeline on a
    new connection, and every job is enqueued once."""
    from kubeq.client.enqueue import ENQUEUE_BATCH

    add = app.task(name="qtasks.add")(qtasks.add.func)
    add.delay(0, 0)  # the thread now keeps a connection
    killed = r.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    jobs = app.enqueue_many([add.s(i, 1) for i in range(2 * ENQUEUE_BATCH + 3)])
    assert app.queue().stats().backlog == len(jobs) + 1
    assert r.zcard(QueueKeys.of("default", app.prefix).ready) == len({j.id for j in jobs}) + 1
