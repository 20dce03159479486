"""Replies slower than the lease: a fetch's jobs are not taken over on their way.

Every reply from Redis comes back 3 s late (a Toxiproxy ``latency`` toxic on the
downstream), longer than the workers' 2 s lease; requests go up at once. A job leased by a
fetch is renewed from the fetch's transit log until the worker has read the reply, and the
renewals do not wait for each other's replies, so no job's lease lapses while it travels,
runs or has its outcome on the way: each job runs once, and none is buried as poison
(docs/architecture.md, Guarantees).
"""

from __future__ import annotations

import time

import redis

import kubeq
from tests.faults.fleet import Ledger, StartWorker, check, enqueue_work, verdict, wait_until
from tests.support.toxiproxy import Proxy


def test_replies_slower_than_the_lease_take_no_job_over(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    for _ in range(2):
        start_worker("--queue", "sr", "--concurrency", "4", "--lease", "2")
    wait_until(lambda: r.zcard(app.queue("sr").keys.workers) >= 2, 30, "2 workers to register")
    with proxy.toxic("latency", "downstream", latency=3000):
        # First a warm-up batch: the workers open the connections slow replies need (a new
        # connection's handshake is several replies, each 3 s late) before the jobs counted.
        warm = enqueue_work(app, ledger, "sr", 8, seconds=0.2, tag="warm")
        wait_until(lambda: all(ledger.ended(j) for j in warm), 150, "the warm-up jobs to end")
        time.sleep(6)  # every warm-up delivery settled (a late run would count against none)
        expected = enqueue_work(app, ledger, "sr", 24, seconds=0.2)
        figures = verdict("replies 3 s late, lease 2 s", app, "sr", expected, ledger, timeout=150)
    check(figures)
    runs = ledger.runs()
    twice = {j: n for j in expected if (n := runs[j]) > 1}
    assert not twice, f"jobs taken over on their way ran twice: {twice}"
