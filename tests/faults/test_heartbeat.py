"""The heartbeat path under faults: a late heartbeat costs no extra run.

A lease token holds its job until the job is delivered again or ends (docs/architecture.md,
Guarantees). A heartbeat comes late for real when the worker is paused past its lease (a
long GC pause, a throttled container, a stopped process): here SIGSTOP, while a fetch by
another worker finds the lease expired and puts the job back in the ready set, lapsed.
Resumed (SIGCONT), the worker's own fetch or its heartbeat, whichever reaches Redis first,
takes the job back under the same token, so the run in progress goes on and its outcome
counts: the job runs once. (A worker that tracks its in-flight work by job id alone used
to lose the second delivery's record when the first run ended, and bury the job as poison
after ``max_deliveries`` runs; the same token makes that impossible.)

Replies held back (a latency toxic on the downstream) no longer make a heartbeat late:
renewals do not wait for the reply to the one before, so they reach Redis on time.
"""

from __future__ import annotations

import signal
import time

import ftasks
import redis

import kubeq
from kubeq import defaults
from kubeq.store.scripts import LUA, run_pipeline
from kubeq.store.wire import fetch_args
from tests.faults.fleet import Ledger, StartWorker, check, verdict, wait_until
from tests.support.toxiproxy import Proxy

LEASE = "2"


def server_ms(r: redis.Redis) -> float:
    sec, usec = r.time()
    return int(sec) * 1000 + int(usec) / 1000


def test_a_late_heartbeat_costs_no_extra_run(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    q = app.queue("hb")
    worker = start_worker("--queue", "hb", "--concurrency", "2", "--lease", LEASE)
    wait_until(lambda: r.zcard(q.keys.workers) > 0, 30, "the worker to register")
    long = ftasks.work.s("long", 6.0).set(job_id="long", queue="hb")
    short = ftasks.work.s("short", 1.0).set(job_id="short", queue="hb")
    q.enqueue_many([long, short])
    wait_until(lambda: ledger.started("long") and ledger.started("short"), 30, "both jobs to start")
    with proxy.toxic("latency", "downstream", latency=1500):
        worker.signal(signal.SIGSTOP)
        try:
            deadline = r.zscore(q.keys.active, "long")
            assert deadline is not None
            wait_until(lambda: server_ms(r) > deadline + 100, 30, "the long job's lease to expire")
            # another worker's fetch finds the lease expired: the job lapses
            keys, args = fetch_args("another", 0, 2000, 0, defaults.WORKER_TTL_MS, [q.keys])
            run_pipeline(r, [(LUA["fetch"], keys, args)])
            assert r.hget(q.keys.job("long"), "status") == b"queued"
        finally:
            worker.signal(signal.SIGCONT)
        time.sleep(float(LEASE))  # replies come late while the worker catches up
    figures = verdict(
        "heartbeat late (lease 2 s)",
        app,
        "hb",
        {"long": ftasks.expected("long"), "short": ftasks.expected("short")},
        ledger,
        timeout=90,
    )
    check(figures)
    runs = ledger.runs()
    assert runs["long"] == 1, f"one late heartbeat made the long job run {runs['long']} times"
    assert runs["short"] == 1
    info = q.job("long").info()
    assert (info.attempts, info.deliveries) == (1, 1), info
