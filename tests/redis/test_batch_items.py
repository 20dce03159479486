"""One item of a batch on its own: ``cancel()`` takes it out of its batch while the batch has
not started (a batch left empty ends cancelled), and an item whose ``expires`` time passed
before its batch started ends ``expired`` without being given to the task."""

from __future__ import annotations

import json
import time

import pytest
import qtasks
import redis

import kubeq
from kubeq.errors import JobExpired
from kubeq.store.keys import QueueKeys
from tests.redis.workers import StartWorker

T = qtasks.app.tasks
KEYS = QueueKeys.of("default")


def item(app: kubeq.App, value: int, **options: object) -> kubeq.Job:
    return app.enqueue_many([T["flowtasks.insert_events"].s(value).set(**options)])[0]


def test_cancel_one_item_of_a_forming_batch(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    jobs = [item(app, v) for v in (1, 2, 3)]
    assert jobs[1].cancel()
    assert jobs[1].status() == "cancelled"
    carrier = r.hget(KEYS.job(jobs[0].id), "batch")
    assert carrier is not None and r.lrange(KEYS.items(carrier.decode()), 0, -1) == [
        jobs[0].id.encode(),
        jobs[2].id.encode(),
    ]
    assert app.queue("default").stats().batched_items == 2
    start_worker()
    assert [jobs[0].result(timeout=60), jobs[2].result(timeout=60)] == [10, 30]
    assert [json.loads(b) for b in r.lrange("flowtest:batches", 0, -1)] == [[1, 3]]
    assert not jobs[0].cancel()  # ended: nothing to cancel


def test_a_batch_whose_items_are_all_cancelled_ends_cancelled(
    app: kubeq.App, redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    jobs = [item(app, v) for v in (4, 5)]
    carrier = r.hget(KEYS.job(jobs[0].id), "batch")
    assert carrier is not None
    assert all(j.cancel() for j in jobs)
    assert r.hget(KEYS.job(carrier.decode()), "status") == b"cancelled"
    assert r.zscore(KEYS.delayed, carrier) is None
    nxt = item(app, 6)  # a new batch opens
    assert r.hget(KEYS.job(nxt.id), "batch") != carrier


def test_an_item_past_its_expiry_ends_expired_and_is_not_run(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    late = item(app, 7, expires=0.1)  # the batch waits 0.5 s: it starts after 0.1 s
    fresh = item(app, 8, expires=60)
    time.sleep(0.2)
    start_worker()
    assert fresh.result(timeout=60) == 80
    with pytest.raises(JobExpired):
        late.result(timeout=60)
    assert late.status() == "expired"
    assert [json.loads(b) for b in r.lrange("flowtest:batches", 0, -1)] == [[8]]
