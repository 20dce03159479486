"""The heartbeat path under faults: a late heartbeat must cost at most one extra run.

Issue 10, defect 1: when a job's heartbeat reaches Redis after its lease expired and the SAME
worker's next fetch runs first, the fetch hands the job back to that worker; a worker that
tracks in-flight work by job id alone then loses the record of the second delivery when the
first run ends, stops renewing it, and the cycle repeats until the job is buried as poison
after running to its end ``max_deliveries`` times.

How the heartbeat is made late, for real: with every slot of the worker busy, its only
traffic is the heartbeat. A downstream latency toxic then holds the heartbeat's REPLY, so the
heartbeat loop waits and the next heartbeat is not sent: no renewal reaches Redis. When the
short job ends, its ack and the worker's next fetch go up unhindered (only replies are held),
and that fetch finds the long job's lease expired and hands it to the same worker. When the
toxic goes, the fetch is sent at once while the heartbeat loop first sleeps its interval: the
heartbeat arrives late.
"""

from __future__ import annotations

import time

import ftasks
import redis

import kubeq
from tests.faults.fleet import Ledger, StartWorker, check, verdict, wait_until
from tests.support.toxiproxy import Proxy

LEASE = "2"


def test_a_late_heartbeat_costs_one_extra_run_not_a_poison_job(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    q = app.queue("hb")
    # Load the scripts first: a heartbeat's first EVALSHA answered NOSCRIPT is loaded and sent
    # again the moment its reply arrives, without the interval's sleep, and would race the
    # fetch; after a Redis restart that race is real, but it is not this scenario's.
    for lua in kubeq.store.scripts.LUA.values():
        r.script_load(lua.script)
    start_worker("--queue", "hb", "--concurrency", "2", "--lease", LEASE)
    wait_until(lambda: r.zcard(q.keys.workers) > 0, 30, "the worker to register")
    long = ftasks.work.s("long", 6.0).set(job_id="long", queue="hb")
    short = ftasks.work.s("short", 4.0).set(job_id="short", queue="hb")
    q.enqueue_many([long, short])
    wait_until(lambda: ledger.started("long") and ledger.started("short"), 30, "both jobs to start")
    # Every slot is busy: only heartbeats talk now. Hold every reply, so the heartbeat loop
    # waits and no renewal is sent, until the short job has ended and the long job's lease
    # has expired. The short job's ack and the next fetch go up as soon as they can (at
    # once on an open connection; a new connection first waits for its handshake replies);
    # the heartbeat loop, once its reply arrives, first sleeps its interval: the fetch wins.
    toxic = proxy.add("latency", "downstream", latency=60_000)
    try:
        wait_until(lambda: ledger.ended("short"), 30, "the short job to end")
        time.sleep(float(LEASE) / 2)
    finally:
        proxy.remove(toxic)
    wait_until(
        lambda: int(r.hget(q.keys.job("long"), "deliveries") or 0) >= 2,
        20,
        "the same worker's fetch to take the long job again (the scenario's precondition: "
        "its heartbeat reached Redis after the lease had expired)",
    )
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
    assert runs["long"] <= 2, (
        f"one late heartbeat made the long job run {runs['long']} times (at most 2 expected: "
        "the run whose lease expired and the redelivery)"
    )
    assert runs["short"] == 1
