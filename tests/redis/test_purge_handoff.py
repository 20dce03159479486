"""A purged callback stays purged: a real worker finishes a parent and hands its
``on_success`` off to a queue no worker serves; the queue is purged while the callback waits;
a hand-off of the same end that comes late (the worker's, after a sweep already did it, or a
sweep's redone after a crash) then enqueues nothing, and a worker of the callback's queue
started afterwards never runs it. The same holds for a callback that failed and was purged
from the dead letters."""

from __future__ import annotations

import time

import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import hand_off_now, wait_until
from tests.redis.workers import StartWorker


def test_a_late_hand_off_does_not_bring_a_purged_callback_back(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, redis_url: str
) -> None:
    start_worker("--queue", "default")
    callback = qtasks.record_result.s("purged").set(queue="later")
    parent = app.queue().enqueue_call(qtasks.add, (2, 3), on_success=callback)
    assert parent.result(timeout=30) == 5
    follow = app.job(f"{parent.id}.s", queue="later")
    wait_until(lambda: follow.status() == "queued", what="the callback to wait on its queue")
    keys = QueueKeys.of("default")
    wait_until(lambda: r.zcard(keys.handoff) == 0, what="the worker's hand-off to be done")

    assert app.queue("later").purge() == 1
    assert follow.status() == "unknown"
    hand_off_now(redis_url, keys, [parent.id])  # the same end's hand-off, late
    assert follow.status() == "unknown"  # not enqueued again
    assert r.zcard(QueueKeys.of("later").ready) == 0

    start_worker("--queue", "later")
    time.sleep(2)  # a callback enqueued again would have run by now
    assert r.lrange("test:cb:purged", 0, -1) == []


def test_a_late_hand_off_does_not_bring_back_a_callback_purged_from_the_dead_letters(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, redis_url: str
) -> None:
    start_worker("--queue", "default", "--queue", "later2")
    callback = qtasks.always_fail.s().set(queue="later2", max_attempts=1)
    parent = app.queue().enqueue_call(qtasks.add, (2, 3), on_success=callback)
    assert parent.result(timeout=30) == 5
    follow = app.job(f"{parent.id}.s", queue="later2")
    wait_until(lambda: follow.status() == "failed", what="the callback dead-lettered")
    keys = QueueKeys.of("default")
    wait_until(lambda: r.zcard(keys.handoff) == 0, what="the worker's hand-off to be done")

    assert app.queue("later2").purge_dead() == 1
    assert follow.status() == "unknown"
    hand_off_now(redis_url, keys, [parent.id])  # the same end's hand-off, late
    time.sleep(1)
    assert follow.status() == "unknown"  # not enqueued again, not run again
    assert app.queue("later2").dead_letter_ids() == []
