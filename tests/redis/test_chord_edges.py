"""Chords where they meet other features, with real worker processes:

- a chord whose callback is refused (an argument JSON refuses, a bad priority, a job id that
  exists) leaves nothing enqueued: the error says so and it is true;
- the callback gets every member's result even when the members' own records expired long
  before it started (short result_ttl, a callback queue with no worker yet);
- a Redis outage when the callback starts (maxclients: its results cannot be read) is
  retried, never dead-lettered as poison, and the callback runs once when Redis is back.
"""

from __future__ import annotations

import json
import math
import time

import pytest
import qtasks
import redis

import kubeq
from kubeq.errors import SerializationError
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker

QUEUES = ("default", "cbq")


def _nothing_enqueued(app: kubeq.App, r: redis.Redis, besides: int = 0) -> None:
    for name in QUEUES:
        s = app.queue(name).stats()
        assert (s.backlog, s.delayed, s.deferred) == (besides if name == "cbq" else 0, 0, 0)
    jobs = list(r.scan_iter("kubeq:*:job:*"))
    assert len(jobs) == besides, f"jobs written: {jobs}"


@pytest.mark.parametrize("refused", ["NaN argument", "bad priority", "existing job id"])
def test_a_chord_whose_callback_is_refused_enqueues_nothing(
    refused: str, app: kubeq.App, r: redis.Redis
) -> None:
    members = [qtasks.add.s(i, i) for i in range(3)]
    besides = 0
    if refused == "NaN argument":
        body = qtasks.collect.s(math.nan)
        error: type[Exception] = SerializationError
    elif refused == "bad priority":
        body = qtasks.collect.s("prio").set(priority=42)
        error = ValueError
    else:
        app.queue("cbq").enqueue_call(qtasks.add, (0, 0), job_id="taken")
        body = qtasks.collect.s("taken").set(job_id="taken")
        error, besides = ValueError, 1
    with pytest.raises(error):
        kubeq.chord(members, body.set(queue="cbq")).delay(app)
    _nothing_enqueued(app, r, besides)


def test_a_callback_gets_the_results_of_members_whose_records_expired(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    members = [qtasks.add.s(i, 1).set(result_ttl=1) for i in range(4)]
    c = kubeq.chord(members, qtasks.collect.s("expired").set(queue="cbq")).delay(app)
    start_worker("--queue", "default", "--concurrency", "4")
    assert c.group.results(timeout=60) == [1, 2, 3, 4]
    wait_until(lambda: all(j.status() == "unknown" for j in c.group.jobs), what="expiry")
    assert c.status() == "queued"  # released, waiting for a worker of its queue
    start_worker("--queue", "cbq")
    assert c.result(timeout=60) == 10
    assert r.lrange("test:chord:expired", 0, -1) == [b"[1, 2, 3, 4]"]


@pytest.mark.parametrize("attempts", [1, 3])
def test_a_redis_outage_when_a_callback_starts_is_retried_not_buried(
    attempts: int, app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """With attempts left it is retried after a backoff (counted, as its policy says); on
    its last attempt it is handed back (not counted)."""
    w = start_worker("--concurrency", "4")
    warm = kubeq.group(qtasks.add.s(i, i) for i in range(16)).delay(app)
    assert warm.results(timeout=60) == [2 * i for i in range(16)]
    body = qtasks.collect_any.s("outage").set(max_attempts=attempts, backoff_min=0.1)
    c = kubeq.chord([qtasks.gate.s("outage")], body).delay(app)
    wait_until(lambda: r.llen("test:started:outage"), what="the member to start")
    callback = c.callback
    callback.status()  # the test's own connections are open before the limit
    try:
        # no new connection from now on: the callback's first read of its results needs one
        r.config_set("maxclients", int(r.info("clients")["connected_clients"]))
        r.set("test:go:outage", 1)
        wait_until(
            lambda: "results could not be read" in w.log() or callback.status() == "failed",
            timeout=60,
            what="the callback to meet the outage",
        )
        time.sleep(2)  # it keeps meeting it: handed back or retried, never buried
        assert callback.status() != "failed", callback.info().reason
    finally:
        r.config_set("maxclients", 10000)
    assert c.result(timeout=60) == "outage"
    assert [json.loads(v) for v in r.lrange("test:chord:outage", 0, -1)] == [["outage"]]
    assert app.queue().dead_letter_ids() == []
