"""Follow-ups (callbacks, released children, chord callbacks) are enqueued exactly once per
parent end, whatever step a crash interrupts, with real worker processes doing the redo:

- a worker dies between its ack and the hand-off while the parent's result_ttl is shorter
  than the hand-off grace: the sweep still finds the parent and hands it off;
- a caller dies between enqueueing a deferred child (or a chord's callback) and linking it:
  a worker of the child's queue redoes the link;
- a requeued dead parent ends again between a hand-off's read and its clear: that second end
  and the child registered meanwhile are kept for their own hand-off;
- purging a queue ends the purged parents for their dependents.

A crash is simulated where it is precise: the ack is sent by the test itself (the worker's
own fetch and ack scripts, no hand-off after it), the caller's link step raises.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import qtasks
import redis
from redis import asyncio as aioredis

import kubeq
from kubeq import defaults
from kubeq.options import TaskOptions
from kubeq.outcomes import Settlement
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, run_pipeline
from kubeq.store.wire import fetch_args, parse_fetch_reply
from kubeq.worker import handoff
from kubeq.workflows import dependencies
from tests.redis.helpers import hand_off_now, wait_until
from tests.redis.workers import StartWorker


def _ran(r: redis.Redis, tag: str) -> list[Any]:
    return [json.loads(v) for v in r.lrange(f"test:cb:{tag}", 0, -1)]


def _end(r: redis.Redis, keys: QueueKeys, outcome: Settlement) -> tuple[str, int]:
    """Fetch the one ready job of ``keys`` and ack it with ``outcome`` as a worker would,
    then stop (no hand-off: the worker "dies" here). Returns its id and ack.lua's flag."""
    fk, fa = fetch_args("dead-worker", 1, 60_000, 0, defaults.WORKER_TTL_MS, [keys])
    (job,) = parse_fetch_reply(run_pipeline(r, [(LUA["fetch"], fk, fa)])[0], [keys]).jobs
    fields = outcome.ack_fields(job.id, job.lease)
    flags = run_pipeline(r, [(LUA["ack"], keys.script_keys, [keys.base, 1, *fields])])[0]
    return job.id, flags[0]


def test_a_parent_whose_result_ttl_is_shorter_than_the_grace_is_still_handed_off(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    keys = QueueKeys.of("default")
    parent = app.queue().enqueue_call(
        qtasks.add, (1, 2), result_ttl=1, on_success=qtasks.record_result.s("short-ttl")
    )
    child = app.queue().enqueue_call(qtasks.record_args, ("short-child",), depends_on=[parent])
    assert _end(r, keys, Settlement.finished(b"3")) == (parent.id, 3)  # hand-off pending
    time.sleep(2.5)  # past the parent's result_ttl, before the sweep's grace
    start_worker()
    wait_until(lambda: _ran(r, "short-ttl"), timeout=60, what="the callback to run")
    assert child.result(timeout=60) is None
    assert _ran(r, "short-ttl") == [[f"{parent.id}.s", 3]]
    assert _ran(r, "short-child") == [["short-child"]]
    wait_until(lambda: not r.exists(keys.job(parent.id)), what="the parent's record to expire")
    assert r.zcard(keys.handoff) == 0


def _caller_dies(*_args: Any, **_kw: Any) -> None:
    raise KeyboardInterrupt("the caller died before it linked the child")


@pytest.mark.also_redis_cluster
def test_a_caller_that_dies_before_linking_a_child_leaves_it_to_a_worker(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = app.queue().enqueue(qtasks.gate, "orphan")
    monkeypatch.setattr(dependencies, "link", _caller_dies)
    with pytest.raises(KeyboardInterrupt):
        app.queue("kids").enqueue_call(
            qtasks.record_args, ("orphan-child",), depends_on=[parent], job_id="orphan-child"
        )
    monkeypatch.undo()
    child = app.job("orphan-child", "kids")
    assert child.status() == "deferred"
    start_worker("--queue", "default", "--queue", "kids")
    r.set("test:go:orphan", 1)
    assert parent.result(timeout=30) == "orphan"
    assert child.result(timeout=60) is None  # linked again by a worker's sweep
    assert _ran(r, "orphan-child") == [["orphan-child"]]
    assert r.zcard(QueueKeys.of("kids").linking) == 0


def test_a_chord_whose_caller_dies_before_linking_still_calls_back_with_every_result(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dependencies, "link", _caller_dies)
    sigs = [qtasks.add.s(i, i).set(job_id=f"m{i}") for i in range(5)]
    with pytest.raises(KeyboardInterrupt):
        kubeq.chord(sigs, qtasks.collect.s("orphan-chord").set(job_id="cb")).delay(app)
    monkeypatch.undo()
    start_worker("--concurrency", "4")
    assert app.job("cb").result(timeout=60) == sum(2 * i for i in range(5))
    assert r.lrange("test:chord:orphan-chord", 0, -1) == [b"[0, 2, 4, 6, 8]"]


def test_a_dead_parent_requeued_and_ended_again_during_its_hand_off_keeps_that_end(
    app: kubeq.App, r: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = QueueKeys.of("default")
    q = app.queue()
    parent = q.enqueue_call(qtasks.add, (1, 2), job_id="p")
    first = q.enqueue_call(qtasks.add, (0, 0), depends_on=[parent], allow_failure=True)
    assert _end(r, keys, Settlement.failed("boom")) == ("p", 3)
    later: list[kubeq.Job] = []
    plan_one = handoff._plan_one

    def meanwhile(*args: Any, **kw: Any) -> Any:
        """Between the hand-off's read and its clear: the dead parent is requeued, a new child
        waits for it, and it ends again (finished)."""
        plan = plan_one(*args, **kw)
        if not later:
            assert q.requeue_dead(["p"]) == 1
            later.append(q.enqueue_call(qtasks.add, (5, 5), depends_on=[parent]))
            assert _end(r, keys, Settlement.finished(b"3")) == ("p", 3)
        return plan

    monkeypatch.setattr(handoff, "_plan_one", meanwhile)
    hand_off_now(redis_url, keys, ["p"])
    monkeypatch.undo()
    assert first.status() == "queued", first.info().reason  # told of the failed end
    (second,) = later
    assert r.zscore(keys.handoff, "p") is not None, "the second end's hand-off was forgotten"
    assert r.smembers(keys.dependents("p")) == {f"default\t{second.id}".encode()}
    hand_off_now(redis_url, keys, ["p"])
    assert second.status() == "queued", second.info().reason
    assert r.zcard(keys.handoff) == 0


def test_purging_parents_resolves_their_children(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    parents = app.queue("doomed")
    p1 = parents.enqueue(qtasks.add, 1, 1)
    p2 = parents.enqueue_call(qtasks.add, (2, 2), delay=3600)
    strict = app.queue("kids").enqueue_call(qtasks.record_args, ("strict",), depends_on=[p1, p2])
    lenient = app.queue("kids").enqueue_call(
        qtasks.record_args, ("lenient",), depends_on=[p2], allow_failure=True
    )
    assert parents.purge() == 2
    assert parents.stats().backlog == 0
    start_worker("--queue", "doomed", "--queue", "kids")  # a worker of the parents' queue
    with pytest.raises(kubeq.JobCancelled):
        strict.result(timeout=60)
    assert "purged" in strict.info().reason or "ended cancelled" in strict.info().reason
    assert lenient.result(timeout=60) is None
    assert _ran(r, "strict") == [] and _ran(r, "lenient") == [["lenient"]]
    assert p1.status() == "cancelled" and "purged" in p1.info().reason


def _sweep(url: str, keys: QueueKeys) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(url)
        try:
            await handoff.sweep(client, [keys], lambda _name: TaskOptions())
        finally:
            await client.aclose()

    asyncio.run(run())


def test_a_link_redone_after_a_parent_expired_cancels_the_child_and_orphans_go(
    app: kubeq.App, r: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep's two other cases: a parent whose record expired before the link was redone
    (how it ended is unknown: the child is cancelled, saying so), and a record whose child
    never came (its caller died before the enqueue: dropped once it is old enough)."""
    kids = QueueKeys.of("kids")
    parent = app.queue().enqueue(qtasks.add, 1, 1)
    monkeypatch.setattr(dependencies, "link", _caller_dies)
    with pytest.raises(KeyboardInterrupt):
        app.queue("kids").enqueue_call(qtasks.add, (0, 0), depends_on=[parent], job_id="c")
    monkeypatch.undo()
    r.delete(QueueKeys.of("default").job(parent.id))  # its record expired meanwhile
    orphans = dependencies.record_calls(
        app.prefix, [(("kids", "never"), [("default", "x")], False)]
    )
    orphans += dependencies.record_calls(
        app.prefix, [(("kids", "soon"), [("default", "x")], False)]
    )
    run_pipeline(r, orphans)
    now_ms = int(time.time() * 1000)
    old = now_ms - 1000 * (handoff.ORPHAN_SECONDS + 5)
    r.zadd(kids.linking, {"c": now_ms - 15_000, "never": old, "soon": now_ms - 15_000})
    _sweep(redis_url, kids)
    child = app.job("c", "kids")
    assert child.status() == "cancelled"
    assert "ended missing" in child.info().reason
    assert r.zrange(kids.linking, 0, -1) == [b"soon"]  # its caller may still enqueue it
    assert not r.exists(kids.links("never")) and not r.exists(kids.links("c"))


def test_a_dead_letter_purged_before_its_hand_off_still_calls_back_and_goes(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """A job fails for good and its worker dies before the hand-off; the dead letter is
    purged at once: its on_failure still runs and its child is still resolved (the sweep
    reads the record), and the record is gone after the hand-off."""
    keys = QueueKeys.of("default")
    parent = app.queue().enqueue_call(
        qtasks.add, (1, 2), on_failure=qtasks.record_failure.s("purged-dead")
    )
    child = app.queue().enqueue_call(qtasks.record_args, ("purged-child",), depends_on=[parent])
    assert _end(r, keys, Settlement.failed("boom", "on purpose"))[0] == parent.id
    assert app.queue().purge_dead() == 1
    start_worker()
    wait_until(lambda: _ran(r, "purged-dead"), timeout=60, what="the on_failure callback")
    wait_until(lambda: child.status() == "cancelled", timeout=60, what="the child resolved")
    wait_until(lambda: not r.exists(keys.job(parent.id)), what="the purged record to go")
    assert r.zcard(keys.dead) == 0 and r.zcard(keys.handoff) == 0
