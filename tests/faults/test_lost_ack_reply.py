"""An acknowledgement whose reply is lost: sent again, it is answered "recorded already".

The worker's outcome reaches Redis and is applied, but the connection breaks before the
reply comes back (a Toxiproxy ``latency`` toxic holds the reply, then the proxy cuts every
connection). The worker (redis-py's retry, or its own loop) sends the same outcome again.
The job ran once and finished once; the resend must say so, not that another worker took
the job over (no other worker exists here). docs/architecture.md, Guarantees.
"""

from __future__ import annotations

import time

import ftasks
import redis

import kubeq
from tests.faults.fleet import Ledger, StartWorker, wait_until
from tests.support.toxiproxy import Proxy


def test_an_ack_sent_again_after_its_reply_was_lost_says_it_was_recorded(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    q = app.queue("lost-ack")
    worker = start_worker("--queue", "lost-ack", "--concurrency", "1")
    wait_until(lambda: r.zcard(q.keys.workers) > 0, 30, "the worker to register")
    q.enqueue_many([ftasks.work.s("once", 1.0).set(job_id="once", queue="lost-ack")])
    wait_until(lambda: ledger.started("once"), 30, "the job to start")
    held = proxy.add("latency", "downstream", latency=5000)  # replies wait in the proxy
    try:
        # the outcome reached Redis and was applied; its reply is still in the proxy
        wait_until(lambda: r.hget(q.keys.job("once"), "status") == b"finished", 30, "the ack")
        proxy.set_enabled(False)  # every connection closes: that reply is lost
    finally:
        proxy.remove(held)
    time.sleep(0.5)
    proxy.set_enabled(True)
    wait_until(lambda: "job once: outcome" in worker.log(), 90, "the resent outcome's answer")
    log = worker.log()
    assert "taken over" not in log and "no longer holds the job" not in log, (
        "a resent outcome whose first send was applied was reported as refused: "
        + next(line for line in log.splitlines() if "job once: outcome" in line)
    )
    assert "job once: outcome recorded already" in log
    assert ledger.runs()["once"] == 1
    info = q.job("once").info()
    assert info is not None and str(info.status) == "finished"
    assert info.result is not None and info.result == f'"{ftasks.expected("once")}"'
