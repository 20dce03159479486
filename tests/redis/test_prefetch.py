"""Prefetch (kubeq/worker/prefetch.py) and the slots (kubeq/worker/threads.py): a worker leases
short jobs ahead of its free slots, runs no more than its concurrency at once, sync and async
jobs together (the sync ones wait for a slot in its thread lane), hands the ones that never
started back at once on SIGTERM (no attempt counted), and gives back what it leased ahead when
the jobs turn out slow, so another worker can run them. Real worker processes on the session's
redis-server."""

from __future__ import annotations

import signal
import threading
import time

import qtasks
import redis

import kubeq
from tests.redis.helpers import max_running, wait_until
from tests.redis.workers import StartWorker


def _sample_in_flight(app: kubeq.App, stop: threading.Event, seen: list[int]) -> None:
    while not stop.is_set():
        seen.append(int(app.queue("pf").stats().in_flight))
        time.sleep(0.002)


def _run_short_jobs(app: kubeq.App, start_worker: StartWorker, r: redis.Redis, *args: str) -> int:
    """300 short jobs on one slot; returns the most jobs the worker held at once."""
    jobs = app.enqueue_many([qtasks.run_and_record.s("pf", 0.001) for _ in range(300)], queue="pf")
    seen: list[int] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_in_flight, args=(app, stop, seen))
    sampler.start()
    try:
        w = start_worker("--queue", "pf", "--concurrency", "1", "--burst", *args)
        assert w.wait(60) == 0, w.log()
    finally:
        stop.set()
        sampler.join()
    assert r.llen("test:started:pf") == 300  # each job ran exactly once
    assert {j.status() for j in jobs} == {"finished"}
    return max(seen)


def test_short_jobs_are_leased_ahead_and_each_runs_once(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    assert _run_short_jobs(app, start_worker, r) > 1


def test_a_worker_runs_at_most_its_concurrency_sync_and_async_jobs_together(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    calls = [(qtasks.aspan if i % 4 == 0 else qtasks.span).s("slots", 0.004) for i in range(200)]
    jobs = app.enqueue_many(calls, queue="pf")
    w = start_worker("--queue", "pf", "--concurrency", "3", "--burst")
    assert w.wait(60) == 0, w.log()
    assert {j.status() for j in jobs} == {"finished"}
    spans = r.lrange("test:span:slots", 0, -1)
    assert len(spans) == 400  # each ran once
    assert max_running(spans) == 3  # its three slots were used, and never more


def test_jobs_begin_in_the_order_they_were_leased_across_fetches(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    """One slot, a FIFO queue of short sync jobs (the thread lane) with an async one now and
    then (a slot of the loop): every fetch leases more while earlier jobs still wait, and the
    jobs must still begin in queue order, or priorities and fair weights would not hold."""
    n = 3000
    calls = [
        (qtasks.arecord_order if i % 50 == 0 else qtasks.record_order).s("lease", i)
        for i in range(n)
    ]
    app.enqueue_many(calls, queue="pf")
    w = start_worker("--queue", "pf", "--concurrency", "1", "--burst")
    assert w.wait(120) == 0, w.log()
    order = [int(v) for v in r.lrange("test:order:lease", 0, -1)]
    assert len(order) == n
    first_out_of_order = next((i for i, v in enumerate(order) if v != i), None)
    assert first_out_of_order is None, order[max(0, (first_out_of_order or 0) - 3) :][:10]


def test_prefetch_ms_0_leases_only_the_free_slots(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    assert _run_short_jobs(app, start_worker, r, "--prefetch-ms", "0") == 1


def test_sigterm_hands_back_prefetched_jobs_at_once_without_an_attempt(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    jobs = app.enqueue_many([qtasks.run_and_record.s("pf", 0.005) for _ in range(400)], queue="pf")
    w = start_worker("--queue", "pf", "--concurrency", "1")
    wait_until(
        lambda: int(app.queue("pf").stats().in_flight) > 1, timeout=30, what="jobs leased ahead"
    )
    w.signal(signal.SIGTERM)
    assert w.wait(30) == 0, w.log()
    started = r.llen("test:started:pf")
    assert 0 < started < 400
    statuses = [j.status() for j in jobs]
    assert statuses.count("finished") == started  # what started, finished in the drain
    assert statuses.count("queued") == 400 - started  # the rest is back, none lost
    queued = [j for j, s in zip(jobs, statuses, strict=True) if s == "queued"]
    for job in queued[:50]:
        info = job.info()
        assert (info.attempts, info.deliveries) == (0, 0), info  # never started: not counted
    w2 = start_worker("--queue", "pf", "--concurrency", "4", "--burst")
    assert w2.wait(60) == 0, w2.log()
    assert r.llen("test:started:pf") == 400  # every job ran, and exactly once
    assert {j.status() for j in jobs} == {"finished"}


def test_jobs_that_turn_out_slow_are_given_back_for_other_workers(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    fast = [qtasks.run_and_record.s("fast", 0.001) for _ in range(60)]
    slow = [qtasks.run_and_record.s("slow", 0.3) for _ in range(30)]
    jobs = app.enqueue_many([*fast, *slow], queue="pf")
    first = start_worker("--queue", "pf", "--concurrency", "1")
    wait_until(lambda: r.llen("test:started:slow") >= 1, timeout=30, what="a slow job started")
    second = start_worker("--queue", "pf", "--concurrency", "4")
    wait_until(lambda: r.llen("test:ended:slow") == 30, timeout=60, what="every slow job ended")
    ran_by = {int(pid) for pid in r.lrange("test:ended:slow", 0, -1)}
    # the first worker had leased the slow jobs ahead while the fast ones ran; it gave them
    # back once it had timed one, and the second worker ran them
    assert second.pid in ran_by, (ran_by, first.pid, second.pid)
    assert r.llen("test:started:slow") == 30  # none ran twice
    assert {j.status() for j in jobs} == {"finished"}
