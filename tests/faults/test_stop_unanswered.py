"""A worker stopped while its hot wait is blocked, and Redis's answer does not come: the
worker does not wait for it beyond its bound (``END_HOT_SECONDS``, kubeq/worker/wakefetch.py),
exits cleanly, and the job that wait's fetch leased runs once, on another worker.

The hot wait is a BLPOP with a fetch written behind it (blocked in Redis, the fetch in the
client's query buffer). Once it is seen blocked, a Toxiproxy ``latency`` toxic holds every
reply from Redis back for a minute (requests still go up at once); a job enqueued then wakes
the BLPOP and the fetch behind it leases the job, and the stopping worker never reads that.
"""

from __future__ import annotations

import functools
import signal
import time

import redis

import kubeq
from tests.faults.fleet import Ledger, StartWorker, enqueue_work, wait_until
from tests.support.toxiproxy import Proxy

QUEUE = "stophot"
HELD_MS = 60_000
"""How long the replies are held back: far beyond the bound, and beyond the worker's socket
timeout (15 s), so a worker that waited for the reply would not log the bound's line."""


def _hot_wait_blocked(r: redis.Redis) -> bool:
    """Some client is blocked in a BLPOP with a command behind it: a worker's hot wait."""
    return any(
        c.get("cmd") == "blpop" and "b" in c.get("flags", "") and int(c.get("qbuf", 0)) > 0
        for c in r.client_list()
    )


def test_a_stopping_worker_does_not_wait_for_a_hot_wait_redis_never_answers(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    w = start_worker("--queue", QUEUE, "--lease", "2")
    toxic = None
    for attempt in range(20):  # each warm-up job opens a hot window of 1 s
        (warm,) = enqueue_work(app, ledger, QUEUE, 1, tag=f"warm{attempt}")
        wait_until(functools.partial(ledger.ended, warm), 60, f"the warm-up job {warm} to end")
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and not _hot_wait_blocked(r):
            time.sleep(0.01)
        if not _hot_wait_blocked(r):
            continue
        toxic = proxy.add("latency", "downstream", latency=HELD_MS)
        if _hot_wait_blocked(r):  # still blocked now that replies are held: its reply will be
            break
        proxy.remove(toxic)  # it ended before the toxic: another warm-up
        toxic = None
    assert toxic is not None, f"the worker's hot wait was never seen blocked\n{w.log()}"

    (job,) = enqueue_work(app, ledger, QUEUE, 1, tag="late")  # wakes the BLPOP: the fetch leases it
    w.signal(signal.SIGTERM)
    assert w.proc.wait(timeout=HELD_MS / 1000 - 10) == 0, w.log()
    assert "the last fetch's reply did not come in 3 s: not read" in w.log(), w.log()
    assert ledger.runs()[job] == 0, "the stopping worker ran the job"
    late = app.queue(QUEUE).job(job)
    assert late.status() == "active", "the hot wait's fetch did not lease the job"
    proxy.remove(toxic)

    start_worker("--queue", QUEUE, "--lease", "2")  # takes it once its lease has lapsed
    assert late.result(timeout=60) == f"done:{job}:0"
    assert ledger.runs()[job] == 1
