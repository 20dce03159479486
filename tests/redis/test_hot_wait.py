"""The hot wait (kubeq/worker/wakefetch.py): soon after a job, an idle worker writes its fetch
behind its BLPOP, so a job enqueued then costs Redis one script call fewer and no wake-up
round trip; a worker stopped while its hot wait is blocked reads that fetch's reply and hands
back what it leased at once, instead of leaving it leased until its lease expires. Real
worker processes on the session's redis-server."""

from __future__ import annotations

import signal
import time

import redis

import kubeq
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker

JOBS = 20
LEASE = "120"
"""Far above the test's waits: a job left leased by a stopped worker would not run again in
time, so a job that runs promptly was handed back or never taken."""


def _calls(r: redis.Redis, command: str) -> int:
    stats = r.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def test_a_job_enqueued_soon_after_another_costs_three_script_calls(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    q = app.queue("hot")
    start_worker("--queue", "hot")
    assert q.enqueue("qtasks.add", 1, 1).result(timeout=30) == 2  # the worker is up
    r.config_resetstat()
    for i in range(JOBS):
        assert q.enqueue("qtasks.add", i, 1).result(timeout=30) == i + 1
        time.sleep(0.02)  # within the hot window of the job before
    scripts, blocks = _calls(r, "evalsha"), _calls(r, "blpop")
    # per job: the enqueue, the fetch written behind the worker's BLPOP and the ack; a fetch
    # sent after the wake-up would make four (result() reads the job, it runs no script)
    assert scripts <= 3 * JOBS, (scripts, blocks)
    assert blocks >= JOBS  # the worker's BLPOPs, and the result() waits that had to block


def test_a_worker_stopped_in_its_hot_wait_hands_back_the_job_its_fetch_took(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    q = app.queue("hotstop")
    taken_back = 0
    for i in range(3):
        w = start_worker("--queue", "hotstop", "--lease", LEASE)
        assert q.enqueue("qtasks.add", i, 0).result(timeout=30) == i  # its hot window opens
        w.signal(signal.SIGTERM)
        job = q.enqueue("qtasks.add", i, 1)  # lands while the hot wait is still blocked
        assert w.wait(30) == 0, w.log()
        if "handing back 1 unfinished jobs" in w.log():  # the stopping worker's fetch took it
            taken_back += 1
            assert job.status() == "queued", w.log()  # back in the queue, not left leased
        other = start_worker("--queue", "hotstop", "--lease", LEASE)
        assert job.result(timeout=30) == i + 1, (w.log(), other.log())
        info = job.info()
        assert info.attempts == 1, info  # it ran once: a hand-back counts no attempt
        other.signal(signal.SIGTERM)
        assert other.wait(30) == 0, other.log()
    assert taken_back > 0, "no stopping worker's hot wait took the job enqueued after SIGTERM"


def test_an_idle_worker_past_its_hot_window_waits_without_fetching(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    q = app.queue("hotcold")
    start_worker("--queue", "hotcold")
    assert q.enqueue("qtasks.add", 2, 2).result(timeout=30) == 4
    time.sleep(1.5)  # past the hot window: one fetch ran at its end
    r.config_resetstat()
    time.sleep(3)
    assert _calls(r, "evalsha") == 0  # a BLPOP alone, kept; the idle beat is 20 s apart
    job = q.enqueue("qtasks.add", 3, 3)  # and it still takes work
    assert job.result(timeout=30) == 6
    wait_until(lambda: q.stats().in_flight == 0, what="the ack")


def test_an_idle_worker_is_not_left_counted_busy_after_its_hot_wait(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    q = app.queue("hotbusy")
    start_worker("--queue", "hotbusy", "--concurrency", "4")
    assert q.enqueue("qtasks.add", 1, 1).result(timeout=30) == 2  # the worker is up
    for round_ in range(3):
        # short jobs that end while the hot wait written behind them is blocked: its fetch
        # runs after they ended and records them as busy (the worker is idle by then)
        jobs = [
            q.enqueue("qtasks.run_and_record", f"hotbusy{round_}", 0.005 * (i + 1))
            for i in range(3)
        ]
        for job in jobs:
            job.result(timeout=30)
        # the operator scales to zero on this: an idle worker must read as idle
        wait_until(
            lambda: q.stats().live_workers == 1 and q.stats().busy_workers == 0,
            timeout=15,
            what=lambda: f"the idle worker is still counted busy: {q.stats().workers}",
        )
