"""A singleton or debounce key is freed on every path out of its job: ack, dead letter,
cancel, abort (waiting and running), expiry, purge; a key whose job vanished counts as free."""

from __future__ import annotations

import time
from typing import Any

import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker

T = qtasks.app.tasks
KEYS = QueueKeys.of("default")


def call(app: kubeq.App, name: str, *args: Any, **options: Any) -> kubeq.Job:
    return app.enqueue_many([T[f"flowtasks.{name}"].s(*args).set(**options)])[0]


def held(r: redis.Redis, key: str) -> bytes | None:
    value: bytes | None = r.get(KEYS.flow(key))
    return value


def test_ack_frees_the_key(app: kubeq.App, redis_url: str, start_worker: StartWorker) -> None:
    r = redis.Redis.from_url(redis_url)
    job = call(app, "sync_replace", "a1", "t")
    assert held(r, "flowtasks.sync_replace:a1") == job.id.encode()
    start_worker()
    assert job.result(timeout=60) == "t"
    assert held(r, "flowtasks.sync_replace:a1") is None


def test_a_dead_letter_frees_the_key(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    job = call(app, "skip_fails", "boom")
    start_worker()
    wait_until(lambda: job.status() == "failed", what="the job is dead-lettered")
    assert held(r, "flowtasks.skip_fails:flowtasks.skip_fails") is None
    assert job.id in app.queue("default").dead_letter_ids()
    assert call(app, "skip_fails", "again").created


def test_cancel_and_abort_of_a_waiting_job_free_the_key(app: kubeq.App, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    first = call(app, "sync_replace", "a2", "t")
    assert first.cancel()
    assert held(r, "flowtasks.sync_replace:a2") is None
    second = call(app, "sync_replace", "a2", "u")
    assert second.created and second.id != first.id
    assert second.abort()
    assert held(r, "flowtasks.sync_replace:a2") is None
    assert call(app, "sync_replace", "a2", "v").created


def test_abort_of_a_running_job_frees_the_key(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    start_worker()
    job = call(app, "sync_skip", "a3", 60.0, "t")
    wait_until(lambda: r.llen("flowtest:runs:a3") == 1, what="it runs")
    assert job.abort()
    assert held(r, "flowtasks.sync_skip:a3") is None
    nxt = call(app, "sync_skip", "a3", 0.0, "u")
    assert nxt.created and nxt.result(timeout=60) == "u"


def test_expiry_frees_the_key(app: kubeq.App, redis_url: str, start_worker: StartWorker) -> None:
    r = redis.Redis.from_url(redis_url)
    job = call(app, "sync_replace", "a4", "t", expires=0.2)
    time.sleep(0.4)
    start_worker()
    wait_until(lambda: job.status() == "expired", what="the job expires at its fetch")
    assert held(r, "flowtasks.sync_replace:a4") is None


def test_purge_frees_the_key(app: kubeq.App, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    call(app, "sync_replace", "a5", "t")
    call(app, "sync_skip", "a5", 0.0, "t")
    assert app.queue("default").purge() == 2
    assert r.keys(KEYS.flow("*")) == []
    assert call(app, "sync_replace", "a5", "u").created


def test_a_key_whose_job_expired_or_vanished_is_free(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    """Result TTL: the key went at the end; a key left naming a job whose record is gone
    (deleted by hand) or that is another key's job does not hold the key either."""
    r = redis.Redis.from_url(redis_url)
    start_worker()
    job = call(app, "sync_replace", "a6", "t", result_ttl=1)
    assert job.result(timeout=60) == "t"
    assert held(r, "flowtasks.sync_replace:a6") is None
    wait_until(lambda: not r.exists(KEYS.job(job.id)), what="the record expires")
    r.set(KEYS.flow("flowtasks.sync_replace:a6"), job.id)  # as if left behind
    fresh = call(app, "sync_replace", "a6", "u")
    assert fresh.created and fresh.result(timeout=60) == "u"
    other = call(app, "sync_skip", "a7", 30.0, "x")
    r.set(KEYS.flow("flowtasks.sync_replace:a7"), other.id)  # names a job of another key
    assert call(app, "sync_replace", "a7", "v").created
