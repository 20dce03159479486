"""The fetch and ack paths under faults, and the whole connection under thin pipes and resets.

Each scenario runs real workers through the proxy, applies one kind of fault at a moment
chosen to hit one path, then checks the outcome users see: every job finished in Redis with
exactly its result, none lost, and how many ran twice (reported: a delivery whose outcome
cannot be known is delivered again, at-least-once).

A half-open connection is Toxiproxy's ``timeout`` toxic with timeout 0: bytes are dropped and
nothing is closed, so the waiting side learns nothing until its own socket timeout.
"""

from __future__ import annotations

import time

import redis

import kubeq
from tests.faults.fleet import Ledger, StartWorker, check, enqueue_work, verdict, wait_until
from tests.support.toxiproxy import Proxy


def registered(r: redis.Redis, app: kubeq.App, queue: str, n: int = 1) -> None:
    wait_until(
        lambda: r.zcard(app.queue(queue).keys.workers) >= n, 30, f"{n} worker(s) to register"
    )


def test_fetch_reply_cut(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    """Fetch replies are cut off part-way (the connection closes after 1 KB): Redis leased
    jobs to a worker that never learns of them. They must run once their lease expires, and
    each only once."""
    start_worker("--queue", "fc", "--concurrency", "4", "--lease", "2")
    registered(r, app, "fc")
    with proxy.toxic("limit_data", "downstream", bytes=1024):
        expected = enqueue_work(app, ledger, "fc", 12, seconds=0.05, pad=400)
        wait_until(lambda: r.zcard(app.queue("fc").keys.active) > 0, 30, "a fetch to lease jobs")
        time.sleep(1.0)
        assert not ledger.runs(), "a job ran although every fetch reply was cut"
    check(verdict("fetch reply cut", app, "fc", expected, ledger, timeout=90))
    assert max(ledger.runs().values()) == 1, "a job whose delivery was never seen ran twice"


def test_half_open_while_idle(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    """Every reply is dropped and nothing is closed for 20 s (longer than the client's socket
    timeout): an idle worker must notice on its own, reconnect and run what arrived."""
    start_worker("--queue", "ho", "--concurrency", "4", "--lease", "2")
    registered(r, app, "ho")
    with proxy.toxic("timeout", "downstream", timeout=0):
        expected = enqueue_work(app, ledger, "ho", 12, seconds=0.05)
        time.sleep(20)
    check(verdict("half-open 20 s (idle worker)", app, "ho", expected, ledger, timeout=90))
    assert max(ledger.runs().values()) == 1


def test_fetch_request_black_holed(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    """The worker's requests vanish on the way up (nothing reaches Redis) for a while."""
    start_worker("--queue", "fr", "--concurrency", "4", "--lease", "2")
    registered(r, app, "fr")
    with proxy.toxic("timeout", "upstream", timeout=0):
        expected = enqueue_work(app, ledger, "fr", 12, seconds=0.05)
        time.sleep(3.0)
        assert r.zcard(app.queue("fr").keys.active) == 0
    check(verdict("fetch request black-holed", app, "fr", expected, ledger, timeout=90))
    assert max(ledger.runs().values()) == 1


def test_ack_reply_cut(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    """The reply to an ack and fetch round trip is cut off part-way: the acks were applied,
    the worker does not know and sends them again, and the fetched jobs were leased unseen.
    An outcome recorded once is not recorded (or run) again; the unseen jobs run once."""
    start_worker("--queue", "ac", "--concurrency", "2", "--lease", "2")
    registered(r, app, "ac")
    expected = enqueue_work(app, ledger, "ac", 10, seconds=1.0, pad=400)
    wait_until(lambda: len(ledger.runs()) >= 2, 30, "two jobs to start")
    with proxy.toxic("limit_data", "downstream", bytes=1024):
        wait_until(lambda: sum(1 for j in expected if ledger.ended(j)) >= 2, 30, "two jobs to end")
        time.sleep(2.0)
    figures = verdict("ack+fetch reply cut", app, "ac", expected, ledger, timeout=90)
    check(figures)
    assert figures.max_runs == 1


def test_black_hole_while_jobs_end(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    """Replies vanish while jobs end (then the proxy tears the connections down)."""
    start_worker("--queue", "ab", "--concurrency", "4", "--lease", "2")
    registered(r, app, "ab")
    expected = enqueue_work(app, ledger, "ab", 8, seconds=1.0)
    wait_until(lambda: len(ledger.runs()) >= 4, 30, "four jobs to start")
    with proxy.toxic("timeout", "downstream", timeout=0):
        wait_until(lambda: sum(1 for j in expected if ledger.ended(j)) >= 4, 30, "four jobs to end")
        time.sleep(1.0)
    check(verdict("replies black-holed as jobs end", app, "ab", expected, ledger, timeout=90))


def test_ack_request_black_holed_another_worker_takes_over(
    app: kubeq.App,
    r: redis.Redis,
    redis_url: str,
    proxy: Proxy,
    ledger: Ledger,
    start_worker: StartWorker,
) -> None:
    """The acks of a worker behind the proxy never reach Redis; a second worker (straight to
    Redis) takes the expired leases over and runs the jobs again; the first worker's late
    acks are refused. Every job ends once in Redis, with its result."""
    start_worker("--queue", "ar", "--concurrency", "4", "--lease", "2")
    registered(r, app, "ar")
    expected = enqueue_work(app, ledger, "ar", 4, seconds=1.0)
    wait_until(lambda: len(ledger.runs()) >= 4, 30, "the four jobs to start behind the proxy")
    with proxy.toxic("timeout", "upstream", timeout=0):
        start_worker("--queue", "ar", "--concurrency", "4", "--lease", "2", url=redis_url)
        wait_until(
            lambda: all(ledger.started(j) >= 2 for j in expected),
            60,
            "the second worker to run the jobs whose acks were lost",
        )
    figures = verdict("ack request black-holed", app, "ar", expected, ledger, timeout=90)
    check(figures)
    assert figures.ran_twice == len(expected)


def test_thin_pipe(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    """Replies crawl at 4 KB/s while fetches carry 3 KB payloads (a fetch reply of 4 jobs
    takes 3 s to arrive, in many small pieces), longer than the 2 s lease. A fetch's jobs are
    renewed from its transit log until the worker has read the reply (heartbeat.lua), so
    none is taken over on its way: a correct worker loses nothing and runs nothing twice."""
    for _ in range(2):
        start_worker("--queue", "bw", "--concurrency", "4", "--lease", "2")
    registered(r, app, "bw", 2)
    with proxy.toxic("bandwidth", "downstream", rate=4):
        expected = enqueue_work(app, ledger, "bw", 16, seconds=0.05, pad=3000)
        wait_final_or_all_ended(ledger, expected, 90)
    figures = verdict("bandwidth 4 KB/s down", app, "bw", expected, ledger, timeout=90)
    check(figures)
    assert figures.max_runs == 1


def test_connection_resets(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    """Every connection is reset by peer again and again (0.1 s in every 0.4 s) while 200
    short jobs run."""
    for _ in range(2):
        start_worker("--queue", "rs", "--concurrency", "4", "--lease", "2")
    registered(r, app, "rs", 2)
    expected = enqueue_work(app, ledger, "rs", 200, seconds=0.1)
    resets = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(ledger.ended(j) for j in list(expected)[-5:]):
        with proxy.toxic("reset_peer", "upstream", timeout=0):
            time.sleep(0.1)
        resets += 1
        time.sleep(0.3)
    figures = verdict(
        "connection resets", app, "rs", expected, ledger, timeout=90, notes=f"{resets} resets"
    )
    check(figures)


def wait_final_or_all_ended(ledger: Ledger, expected: dict[str, str], timeout: float) -> None:
    wait_until(
        lambda: all(ledger.ended(j) for j in expected), timeout, "every job to run to its end"
    )
