"""The client API against a real Redis: enqueue, results, options, bulk, stats, cancel."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import qtasks
import redis
from conftest import StartWorker
from helpers import evalsha_calls, wait_until

import kubeq


def test_celery_style_delay_and_result(
    start_worker: StartWorker, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEQ_REDIS_URL", redis_url)
    app = kubeq.App()  # the URL comes from KUBEQ_REDIS_URL

    @app.task(name="qtasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    start_worker("--queue", "default")
    job = add.delay(4, 4)
    assert job.result(timeout=20) == 8
    assert job.status() == "finished"
    info = job.info()
    assert info.attempts == 1 and info.task == "qtasks.add" and info.worker


def test_rq_style_enqueue_by_function_or_name(app: kubeq.App, start_worker: StartWorker) -> None:
    start_worker("--queue", "default")
    q = app.queue("default")
    assert q.enqueue(qtasks.add, 1, 2).result(timeout=20) == 3
    assert q.enqueue("qtasks.add", x=5, y=6).result(timeout=20) == 11
    assert q.enqueue(qtasks.async_add, 2, 2).result(timeout=20) == 4


def test_result_waits_without_polling(app: kubeq.App, start_worker: StartWorker) -> None:
    worker = start_worker("--queue", "default")
    assert app.queue().enqueue(qtasks.add, 0, 0).result(timeout=20) == 0  # worker is up
    sent: list[str] = []
    real = app.redis.execute_command

    def counting(*args: object, **options: object) -> object:
        sent.append(str(args[0]))
        return real(*args, **options)

    app.redis.execute_command = counting  # type: ignore[method-assign]
    job = app.queue().enqueue(qtasks.run_and_record, "slow", 2.0)
    sent.clear()
    assert job.result(timeout=30) == worker.pid
    # read, block on the done-list until the job ends, read again: a poller would have sent
    # dozens of commands during the 2 s the job runs
    assert sent.count("BLMOVE") == 1, sent
    assert len(sent) <= 3, sent


def test_enqueue_many_is_one_round_trip(app: kubeq.App, r: redis.Redis) -> None:
    app.queue("bulk").enqueue(qtasks.add, 0, 0)  # the queue registry write happens once
    before = evalsha_calls(r)
    jobs = app.queue("bulk").enqueue_many([qtasks.add.s(i, i) for i in range(500)])
    assert evalsha_calls(r) - before == 1
    assert len({j.id for j in jobs}) == 500
    assert app.queue("bulk").stats().backlog == 501


def test_enqueue_many_across_queues_keeps_order(app: kubeq.App) -> None:
    calls = [qtasks.add.s(i, 0).set(queue=("a", "b")[i % 2]) for i in range(10)]
    jobs = app.enqueue_many(calls)
    assert [j.queue for j in jobs] == [("a", "b")[i % 2] for i in range(10)]
    assert app.queue("a").stats().backlog == 5 and app.queue("b").stats().backlog == 5


def test_unserializable_argument_fails_in_the_caller_and_enqueues_nothing(app: kubeq.App) -> None:
    with pytest.raises(kubeq.SerializationError, match="argument 'y'"):
        app.queue().enqueue(qtasks.add, 1, y={1, 2})
    assert app.queue().stats().backlog == 0


def test_priorities_hold_while_jobs_wait(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    q = app.queue("prio")
    q.pause()
    for priority, value in [(0, "low"), (5, "mid-1"), (9, "high"), (5, "mid-2"), (0, "low-2")]:
        q.enqueue_call(qtasks.record_order, ("p", value), priority=priority)
    start_worker("--queue", "prio", "--concurrency", "1")
    time.sleep(0.5)
    assert r.llen("test:order:p") == 0  # paused: nothing taken
    q.resume()
    wait_until(lambda: r.llen("test:order:p") == 5, what="all five jobs")
    order = [v.decode() for v in r.lrange("test:order:p", 0, -1)]
    assert order == ["high", "mid-1", "mid-2", "low", "low-2"]


def test_queue_order_is_priority_order(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    for name in ("low", "high"):
        app.queue(name).pause()
        for i in range(3):
            app.queue(name).enqueue(qtasks.record_order, "q", f"{name}-{i}")
        app.queue(name).resume()
    start_worker("--queue", "high", "--queue", "low", "--concurrency", "1")
    wait_until(lambda: r.llen("test:order:q") == 6, what="six jobs")
    order = [v.decode() for v in r.lrange("test:order:q", 0, -1)]
    assert order == ["high-0", "high-1", "high-2", "low-0", "low-1", "low-2"]


def test_delayed_job_waits_for_its_time(app: kubeq.App, start_worker: StartWorker) -> None:
    start_worker("--queue", "default")
    job = app.queue().enqueue_call(qtasks.add, (1, 1), delay=1.5)
    assert job.status() == "scheduled"
    stats = app.queue().stats()
    assert (stats.delayed, stats.backlog) == (1, 0)
    assert job.result(timeout=20) == 2
    info = job.info()
    assert info.started_at is not None and info.enqueued_at is not None
    assert info.started_at - info.enqueued_at >= 1.4  # it did not run early


def test_job_id_deduplicates_live_jobs(app: kubeq.App) -> None:
    q = app.queue()
    first = q.enqueue_call(qtasks.add, (1, 2), job_id="invoice-42")
    second = q.enqueue_call(qtasks.add, (3, 4), job_id="invoice-42")
    assert first == second
    assert q.stats().backlog == 1
    assert "[1,2]" in first.info().payload  # the first call is the one kept


def test_cancel_a_waiting_job(app: kubeq.App) -> None:
    job = app.queue().enqueue(qtasks.add, 1, 1)
    assert job.cancel() is True
    assert job.status() == "cancelled"
    with pytest.raises(kubeq.JobCancelled):
        job.result(timeout=1)
    assert app.queue().stats().backlog == 0
    assert job.cancel() is False


def test_result_timeout_and_unknown_job(app: kubeq.App) -> None:
    job = app.queue("nobody-consumes").enqueue(qtasks.add, 1, 1)
    with pytest.raises(kubeq.ResultTimeout):
        job.result(timeout=0.3)
    with pytest.raises(kubeq.JobNotFound):
        app.job("no-such-job").result(timeout=1)


def test_stats_in_one_round_trip(app: kubeq.App, r: redis.Redis, start_worker: StartWorker) -> None:
    q = app.queue("st")
    q.enqueue_many([qtasks.add.s(1, 1)] * 3)
    q.enqueue_call(qtasks.add, (1, 1), delay=60)
    time.sleep(0.3)
    before = evalsha_calls(r)
    s = q.stats()
    assert evalsha_calls(r) - before == 1
    assert (s.backlog, s.delayed, s.in_flight, s.dead, s.paused) == (3, 1, 0, 0, False)
    assert s.oldest_ready_age >= 0.2
    worker = start_worker("--queue", "st", "--concurrency", "2")
    job = q.enqueue(qtasks.run_and_record, "busy", 3.0)
    wait_until(lambda: job.status() == "active", what="the slow job to start")
    s = q.stats()
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
