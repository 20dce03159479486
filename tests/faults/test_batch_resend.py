"""Batch items sent in bulk whose connection is cut before the reply: one ``enqueue_many``
of 1,500 items is three ``batch.lua`` calls (500 each) in one pipeline; the cut comes after
the second has run in Redis and its batches have run on real workers. kubeq sends the
calls again: no item is written twice or joins a second batch, each runs once, and every
handle says the call created its item.

The producer reaches Redis only through the proxy; the workers go straight to Redis.
Executions are counted outside Redis (the ledger, ftasks.py).
"""

from __future__ import annotations

import json

import ftasks
import redis

import kubeq
from kubeq.client.batchsend import BATCH_SEND
from kubeq.store.scripts import source
from tests.faults.fleet import Ledger, StartWorker, wait_until
from tests.faults.test_bulk_resend import Producer, cut
from tests.support.toxiproxy import Proxy

N = 3 * BATCH_SEND


def test_bulk_batch_items_cut_after_their_second_call_run_once(
    app: kubeq.App,
    r: redis.Redis,
    redis_url: str,
    proxy: Proxy,
    ledger: Ledger,
    start_worker: StartWorker,
) -> None:
    values = [f"i-{n}" for n in range(N)]
    producer = Producer(proxy.url, "bulk", lambda: [ftasks.work_batch.s(v) for v in values])
    producer.start()
    assert producer.warm.wait(60) and producer.error is None, producer.error
    for _ in range(2):
        start_worker("--queue", "bulk", url=redis_url)
    r.script_load(source("batch"))  # loaded, as it is once any item was sent
    proxy.add("bandwidth", "upstream", rate=20)  # a call of 500 items takes a few seconds
    producer.go.set()
    wait_until(lambda: len(ledger.runs()) >= 2 * BATCH_SEND, 180, "two batches to run")
    proxy.add("timeout", "upstream", timeout=0)  # the rest goes nowhere
    assert len(ledger.runs()) < N, "the third call ran before the cut"
    assert producer.is_alive(), "the producer got its reply before the cut"
    cut(proxy, r)
    producer.join(120)
    assert producer.error is None, producer.error
    jobs = producer.jobs
    assert len({j.id for j in jobs}) == N and all(j.created for j in jobs)
    results = [j.result(timeout=120) for j in jobs]
    assert results == [ftasks.expected(v) for v in values]
    runs = ledger.runs()
    assert sorted(runs) == sorted(values) and set(runs.values()) == {1}, "an item ran twice"
    carriers = r.zrange("kubeq:{bulk}:batches", 0, -1)
    sizes = sorted(r.llen(f"kubeq:{{bulk}}:items:{c.decode()}") for c in carriers)
    assert sizes == [BATCH_SEND] * 3, sizes
    firsts = [json.loads(r.hget(f"kubeq:{{bulk}}:job:{c.decode()}", "result")) for c in carriers]
    assert sorted(f["items"] for f in firsts) == [BATCH_SEND] * 3
