"""An enqueue whose connection is cut before its reply arrives, with real workers running
what the first send wrote: kubeq sends it again, and that resend must neither replace what
the first send wrote (finished jobs would run twice) nor duplicate it, and the handles must
still say which jobs the call created.

The producer reaches Redis only through the proxy; the workers go straight to Redis, so the
jobs of the first send run and finish while the producer still waits for its reply. Every
execution is counted outside Redis (the ledger, ftasks.py). The producer's socket timeout is
long: the cut, not a timeout, is what makes it send again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ftasks
import redis

import kubeq
from kubeq.client.enqueue import ENQUEUE_BATCH
from tests.faults.fleet import (
    Ledger,
    StartWorker,
    check,
    verdict,
    wait_final,
    wait_until,
)
from tests.support.toxiproxy import Proxy

PRODUCER = "kubeq-test-producer"
"""The producer's client name, for CLIENT KILL."""
N = 3 * ENQUEUE_BATCH
"""Three batches (about 140 KB each): the cut comes after the second has run in Redis."""
LIVE = [*range(10), *range(2 * ENQUEUE_BATCH + 500, 2 * ENQUEUE_BATCH + 510)]
"""Calls whose job id names a job enqueued before (scheduled for later, so live): one in the
first batch and one in the third, which the call must report as not created."""


class Producer(threading.Thread):
    """An App behind the proxy, in a thread of its own: it connects and registers its queue
    first (``warm``), then waits for ``go`` and makes one enqueue call, keeping its handles
    or its error."""

    def __init__(self, url: str, queue: str, calls: Callable[[], list[kubeq.Call]]) -> None:
        super().__init__(daemon=True)
        # a reply may take as long as the scenario needs: only the cut makes it send again
        self.app = kubeq.App(f"{url}?socket_timeout=300&client_name={PRODUCER}")
        self.queue = queue
        self.calls = calls
        self.warm = threading.Event()
        self.go = threading.Event()
        self.jobs: list[kubeq.Job] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            q = self.app.queue(self.queue)
            q.enqueue_many([ftasks.work.s("warm").set(job_id="warm", delay=3600)])
            self.warm.set()
            self.go.wait(60)
            self.jobs = q.enqueue_many(self.calls())
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.warm.set()
            self.app.close()


def cut(proxy: Proxy, r: redis.Redis) -> None:
    """Kill the producer's connection: clear the proxy's toxics (the producer has written all
    it will write; removing Toxiproxy's ``timeout`` toxic closes the connections it held), and
    kill in Redis whatever is left of it. The producer learns of the cut at once and sends
    again on a new connection."""
    held = [c["id"] for c in r.client_list() if c.get("name") == PRODUCER]
    assert held, "the producer's connection was cut before its time"
    proxy.clear()
    for client_id in held:
        r.client_kill_filter(_id=client_id)


def test_a_bulk_enqueue_cut_after_its_second_batch_runs_each_job_once(
    app: kubeq.App,
    r: redis.Redis,
    redis_url: str,
    proxy: Proxy,
    ledger: Ledger,
    start_worker: StartWorker,
) -> None:
    """The reported scenario, smaller: a streamed enqueue of three batches whose connection dies
    once the second batch has run; the workers finish those 4,000 jobs before the producer
    learns of the cut and sends every batch again. Each job runs once, and the handles say
    that the call created every job but the ones that existed before it."""
    ids = [f"b-{i}" for i in range(N)]
    q = app.queue("bulk")
    q.enqueue_many([ftasks.work.s(ids[i]).set(job_id=ids[i], delay=3600) for i in LIVE])
    producer = Producer(proxy.url, "bulk", lambda: [ftasks.work.s(i).set(job_id=i) for i in ids])
    producer.start()
    assert producer.warm.wait(60) and producer.error is None, producer.error
    for _ in range(2):
        start_worker("--queue", "bulk", "--concurrency", "8", url=redis_url)
    ledger.mark_sent("bulk")
    # a thin pipe up (a batch takes 3 s or more), so the test sees the second batch land well
    # before the third does
    proxy.add("bandwidth", "upstream", rate=40)
    producer.go.set()
    last_of_second = q.keys.job(ids[2 * ENQUEUE_BATCH - 1])
    wait_until(lambda: r.exists(last_of_second), 120, "the second batch to run in Redis")
    proxy.add("timeout", "upstream", timeout=0)  # the rest goes nowhere
    assert not r.exists(q.keys.job(ids[-1])), "the third batch ran before the cut"
    first = [j for i, j in enumerate(ids[: 2 * ENQUEUE_BATCH]) if i not in LIVE]
    wait_final(app, "bulk", first, 180)
    assert producer.is_alive(), "the producer gave up before the cut"
    cut(proxy, r)
    producer.join(120)
    assert producer.error is None, producer.error
    assert not producer.is_alive()

    ran = [j for i, j in enumerate(ids) if i not in LIVE]
    expected = {j: ftasks.expected(j) for j in ran}
    figures = verdict("bulk resend after a cut", app, "bulk", expected, ledger)
    assert figures.ran_twice == 0, f"{figures.ran_twice} jobs ran twice"
    check(figures)
    assert not any(ledger.started(ids[i]) for i in LIVE)
    assert [q.job(ids[i]).status() for i in LIVE] == ["scheduled"] * len(LIVE)
    # the handles: every job the call created, and not the ones that existed
    created: list[Any] = [j.created for j in producer.jobs]
    assert [j.id for j in producer.jobs] == ids
    assert created == [i not in LIVE for i in range(N)]


def test_a_one_call_enqueue_whose_reply_is_lost_runs_its_job_once(
    app: kubeq.App,
    r: redis.Redis,
    redis_url: str,
    proxy: Proxy,
    ledger: Ledger,
    start_worker: StartWorker,
) -> None:
    """One ``delay`` whose reply never comes back: the job runs and finishes meanwhile, then
    the connection dies and the client sends the call again. The job is not replaced (it ran
    once, its result stands) and the handle says the call created it."""
    q = app.queue("one")
    producer = Producer(proxy.url, "one", lambda: [ftasks.work.s("one-1").set(job_id="one-1")])
    producer.start()
    assert producer.warm.wait(60) and producer.error is None, producer.error
    start_worker("--queue", "one", url=redis_url)
    ledger.mark_sent("one")
    proxy.add("timeout", "downstream", timeout=0)  # the reply goes nowhere
    producer.go.set()
    wait_final(app, "one", ["one-1"], 120)
    assert q.job("one-1").status() == "finished"
    finished_at = q.job("one-1").info().finished_at
    assert producer.is_alive(), "the producer gave up before the cut"
    cut(proxy, r)
    producer.join(120)
    assert producer.error is None, producer.error
    (job,) = producer.jobs
    assert q.job("one-1").status() == "finished", "the resend replaced the finished job"
    assert q.job("one-1").info().finished_at == finished_at
    check(
        verdict(
            "one call resent after a cut", app, "one", {"one-1": ftasks.expected("one-1")}, ledger
        )
    )
    assert ledger.started("one-1") == 1
    assert job.created is True
