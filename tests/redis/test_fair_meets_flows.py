"""Fair keys where they meet the other ways a job becomes ready: a singleton call, a
debounced call, and a job woken from a durable wait by a signal each take their key's turn
(the job is in its key's set, so the fetch serves it in fair order), and a singleton key holds
while its job sleeps."""

from __future__ import annotations

from typing import Any

import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys

T = qtasks.app.tasks
KEYS = QueueKeys.of("default")


def call(app: kubeq.App, name: str, *args: Any, **options: Any) -> kubeq.Job:
    return app.enqueue_many([T[f"flowtasks.{name}"].s(*args).set(**options)])[0]


def test_a_singleton_call_with_a_fair_key_takes_its_keys_turn(
    app: kubeq.App, redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    job = call(app, "sync_skip", "acct-f", 0.0, "t0", fair_key="tenant-a")
    assert job.created and job.status() == "queued"
    assert r.zscore(KEYS.fair_queue("tenant-a"), job.id) is not None
    assert r.zscore(KEYS.fair, "tenant-a") is not None
    again = call(app, "sync_skip", "acct-f", 0.0, "t1", fair_key="tenant-a")
    assert again.id == job.id and not again.created


def test_a_debounced_call_keeps_its_fair_key_for_when_it_falls_due(
    app: kubeq.App, redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    job = call(app, "reindex_keyed", "doc-fair", 0, fair_key="tenant-d")
    assert job.created and job.status() == "scheduled"
    assert r.hget(KEYS.job(job.id), "fk") == b"tenant-d"  # the fetch promotes it into its turn


def suspend_by_hand(r: redis.Redis, job_id: str, key: str, signal: str) -> None:
    """What suspend.lua leaves for a job waiting on ``signal``: sleeping, in its waiters."""
    r.zrem(KEYS.ready, job_id)
    r.zrem(KEYS.fair_queue(key), job_id)
    r.zrem(KEYS.fair, key)
    r.hset(KEYS.job(job_id), mapping={"status": "sleeping", "signal": signal, "wait_step": "w"})
    r.zadd(KEYS.sleeping, {job_id: 9e15})
    r.zadd(KEYS.waiters(signal), {job_id: 1})


def test_a_signalled_waiter_with_a_fair_key_takes_its_keys_turn(
    app: kubeq.App, redis_url: str
) -> None:
    """Woken by its signal, a keyed job is ready in its key's set, where the fetch's fair
    order finds it."""
    r = redis.Redis.from_url(redis_url)
    job = call(app, "sync_skip", "acct-w", 0.0, "w", fair_key="t-w")
    suspend_by_hand(r, job.id, "t-w", "go")
    assert app.signal("go", {"ok": True}) == 1
    assert job.status() == "queued"
    assert r.zscore(KEYS.fair_queue("t-w"), job.id) is not None
    assert r.zscore(KEYS.fair, "t-w") is not None


def test_a_singleton_key_holds_while_its_job_sleeps(app: kubeq.App, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    job = call(app, "sync_skip", "acct-s", 0.0, "s")
    suspend_by_hand(r, job.id, "t-s", "later")
    again = call(app, "sync_skip", "acct-s", 0.0, "s2")
    assert again.id == job.id and not again.created
