"""Cases the state machine found, pinned as plain tests so they fail every time, not only when
Hypothesis happens to reach them.

An ack naming a job whose key is garbage, for an id that is not held by anyone (it waits in
the ready set: a late ack from a worker whose delivery was taken over, after the job's key
was overwritten). The script dead-letters the entry, which is right, but must not leave it in
the ready set too: a job is in exactly one state set, and stats must count it once.

A parent re-enqueued (same id) after it ended but before the worker's hand-off read it: the
new job replaced the ended one's fields, so the hand-off read "queued" and cancelled the
waiting child ("its parent ended queued"). An id whose end waits for its hand-off is now
not free yet; and a dead parent requeued before its hand-off is skipped by it (its next end
hands off again).

The intersections machine (intersections.py) found the rest; those marked xfail are known
defects whose fixes are under way, each named in its reason:

- a streamed bulk enqueue whose connection is lost before it reads its replies sends every
  batch again, and the resend replaces a job of the first send that has already finished:
  it runs again.
- purging a queue deletes a waiting parent without ending it for the hand-off: its
  ``depends_on`` child (a chord's callback, too) stays deferred for ever.
- a parent whose result TTL runs out before its hand-off (the acking worker died, and the
  sweep's grace is longer than the TTL; or an abort): its child stays deferred for ever and
  its callback is never enqueued.
- an abort acknowledged while the job ran, then the job's result TTL runs out before the
  worker's next heartbeat: the heartbeat calls the run lost, not aborted, so it goes on.
- a concurrency-limited job whose heartbeat comes late is reclaimed and its slot freed while
  its first run goes on: once the slot is free again, a waiting job of the same key runs
  beside that first run (two at once with ``concurrency_limit=1``).
- a chord whose callback is refused at enqueue (an argument JSON cannot carry) raises, yet
  leaves its members enqueued: they run, and nothing ever collects them.
- a chord's callback that starts after a member's result TTL ran out gets None for that
  member, which had finished.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from redis import asyncio as aioredis

import kubeq
from kubeq import defaults
from kubeq.client import enqueue
from kubeq.client.send import EnqueueStream
from kubeq.options import Call
from kubeq.outcomes import Settlement
from kubeq.store.keys import QueueKeys, ready_score
from kubeq.store.scripts import LUA, run_pipeline
from kubeq.worker import leases
from kubeq.worker.delivery import Delivery
from kubeq.worker.settings import WorkerSettings
from tests.model import known
from tests.model.intersections import Intersections
from tests.redis.helpers import hand_off_now


def places(r: redis.Redis, keys: QueueKeys, member: str) -> list[str]:
    sets = {"ready": keys.ready, "delayed": keys.delayed, "active": keys.active, "dead": keys.dead}
    return [name for name, key in sets.items() if r.zscore(key, member) is not None]


def test_an_ack_naming_waiting_garbage_leaves_it_in_one_set(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    keys = QueueKeys.of("m")
    r.set(keys.job("g-0"), b"not a hash")
    r.zadd(keys.ready, {"g-0": ready_score(defaults.PRIORITY, 0)})
    fields = Settlement.finished(b"1").ack_fields("g-0", "1")
    flags = run_pipeline(r, [(LUA["ack"], keys.script_keys, [keys.base, 1, *fields])])[0]
    assert flags != [1], "an ack was applied to a job whose key is not a hash"
    where = places(r, keys, "g-0")
    assert len(where) == 1, f"the garbage entry is in {where}: a job is in exactly one set"
    s = kubeq.read_stats(r, ["m"])[0]
    assert s.backlog + s.in_flight + s.delayed + s.dead == 1, f"counted more than once: {s}"
    r.close()


def _end(r: redis.Redis, keys: QueueKeys, outcome: Settlement) -> int:
    """Fetch the one ready job and ack it with ``outcome``; returns ack.lua's flag."""
    from kubeq.store.wire import fetch_args, parse_fetch_reply

    fk, fa = fetch_args("w", 1, 60_000, 0, defaults.WORKER_TTL_MS, [keys])
    (job,) = parse_fetch_reply(run_pipeline(r, [(LUA["fetch"], fk, fa)])[0], [keys]).jobs
    fields = outcome.ack_fields(job.id, job.lease)
    return run_pipeline(r, [(LUA["ack"], keys.script_keys, [keys.base, 1, *fields])])[0][0]


def test_a_parent_re_enqueued_before_its_hand_off_keeps_its_child(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    app = kubeq.App(redis_url)
    keys = QueueKeys.of("m")
    q = app.queue("m")
    q.enqueue_many([Call("m.task", (), queue="m", job_id="p")])
    (child,) = app.enqueue_many(
        [Call("m.task", (), queue="m", job_id="c", depends_on=[q.job("p")])]
    )
    assert _end(r, keys, Settlement.finished(b"1")) == 3  # applied, hand-off pending
    q.enqueue_many([Call("m.task", (), queue="m", job_id="p")])  # too early: a duplicate
    assert r.hget(keys.job("p"), "status") == b"finished"
    hand_off_now(redis_url, keys, ["p"])
    assert child.status() == "queued", child.info().reason
    q.enqueue_many([Call("m.task", (), queue="m", job_id="p")])  # handed off: the id is free
    assert r.hget(keys.job("p"), "status") == b"queued"
    app.close()
    r.close()


def test_a_dead_parent_requeued_before_its_hand_off_hands_off_at_its_next_end(
    redis_url: str,
) -> None:
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    app = kubeq.App(redis_url)
    keys = QueueKeys.of("m")
    q = app.queue("m")
    q.enqueue_many([Call("m.task", (), queue="m", job_id="p")])
    (child,) = app.enqueue_many(
        [Call("m.task", (), queue="m", job_id="c", depends_on=[q.job("p")])]
    )
    assert _end(r, keys, Settlement.failed("boom")) == 3
    assert q.requeue_dead(["p"]) == 1
    hand_off_now(redis_url, keys, ["p"])  # p runs again: not an end to resolve the child with
    assert child.status() == "deferred"
    assert _end(r, keys, Settlement.finished(b"1")) == 3
    hand_off_now(redis_url, keys, ["p"])
    assert child.status() == "queued", child.info().reason
    app.close()
    r.close()


def test_a_bulk_resend_never_replaces_a_job_that_ended(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enqueue, "ENQUEUE_BATCH", 2)  # three jobs: two batches, streamed
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    r.script_load(LUA["enqueue"].script)
    app = kubeq.App(redis_url)
    keys = QueueKeys.of("m")
    stream = EnqueueStream(app.redis, app.prefix, None)
    plan = app._plan([Call("m.task", (i,), queue="m") for i in range(3)], None, sink=stream)
    deadline = time.monotonic() + 30  # written, replies not read yet
    while not all(r.exists(keys.job(i)) for i in plan.job_ids):
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert _end(r, keys, Settlement.finished(b"1")) == 1  # the first job runs and finishes
    assert stream.stream.conn is not None
    stream.stream.conn.disconnect()  # the producer's connection is lost: it resends all
    stream.finish(plan)
    first = app.job(plan.job_ids[0], "m")
    assert first.status() == "finished", "the resend replaced a job that had finished"
    app.close()
    r.close()


def _expire(r: redis.Redis, key: str) -> None:
    """The key's TTL runs out (now)."""
    assert r.pttl(key) > 0, f"{key} has no TTL to run out"
    r.pexpire(key, 1)
    deadline = time.monotonic() + 30
    while r.exists(key):
        assert time.monotonic() < deadline
        time.sleep(0.002)


def test_a_purged_parent_does_not_strand_its_child(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    app = kubeq.App(redis_url)
    keys = QueueKeys.of("m")
    q = app.queue("m")
    q.enqueue_many([Call("m.task", (), queue="m", job_id="p")])
    (child,) = app.enqueue_many(
        [Call("m.task", (), queue="n", job_id="c", depends_on=[q.job("p")])]
    )
    assert q.purge() == 1
    hand_off_now(redis_url, keys, [m.decode() for m in r.zrange(keys.handoff, 0, -1)])
    assert child.status() != "deferred", "the child waits for a parent that was purged"
    app.close()
    r.close()


def test_a_parent_expired_before_its_hand_off_still_hands_off(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    app = kubeq.App(redis_url)
    keys = QueueKeys.of("m")
    q = app.queue("m")
    callback = Call("m.task", (), queue="m")
    q.enqueue_many([Call("m.task", (), queue="m", job_id="p", result_ttl=1, on_success=callback)])
    (child,) = app.enqueue_many(
        [Call("m.task", (), queue="m", job_id="c", depends_on=[q.job("p")])]
    )
    assert _end(r, keys, Settlement.finished(b"1")) == 3  # hand-off pending; its worker dies
    time.sleep(1.5)  # its result_ttl (1 s) passes before the sweep's grace is over
    hand_off_now(redis_url, keys, ["p"])  # the sweep
    assert app.job("p.s", "m").status() != "unknown", "the callback was never enqueued"
    assert child.status() != "deferred", "the child waits for ever"
    app.close()
    r.close()


def test_an_abort_is_not_missed_when_the_result_expires_first(redis_url: str) -> None:
    from kubeq.store.wire import fetch_args, parse_fetch_reply

    r = redis.Redis.from_url(redis_url)
    r.flushall()
    app = kubeq.App(redis_url)
    keys = QueueKeys.of("m")
    (job,) = app.queue("m").enqueue_many([Call("m.task", (), queue="m", result_ttl=1)])
    fk, fa = fetch_args("w", 1, 60_000, 0, defaults.WORKER_TTL_MS, [keys])
    (fetched,) = parse_fetch_reply(run_pipeline(r, [(LUA["fetch"], fk, fa)])[0], [keys]).jobs
    assert job.abort(), "the running job was not aborted"
    time.sleep(1.5)  # its result TTL (1 s) passes before the next heartbeat
    d = Delivery(fetched)

    async def beat() -> list[Delivery]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            settings = WorkerSettings("m", ["m"], redis_url=redis_url, worker_id="w")
            aborted, _ = await leases.renew(client, LUA["heartbeat"], [keys], settings, [d], 1)
            return aborted
        finally:
            await client.aclose()

    assert asyncio.run(beat()) == [d], "the heartbeat did not report the abort: the run goes on"
    app.close()
    r.close()


def test_a_late_heartbeat_never_lets_a_waiting_job_run_beside_it(redis_url: str) -> None:
    """A run's concurrency slot is its lease's: an expired lease keeps the slot until the job
    is delivered again, the new delivery takes it over, and the old run, fenced, is stopped
    by its worker's next heartbeat before the slot can go to a waiting job."""
    Intersections.url = redis_url
    m = Intersections()  # two real workers, stepped by hand (fleet.py)
    try:
        m.enqueue("limited", "q", "a", False, None, None)
        m.enqueue("limited", "q", "a", False, None, None)
        m.fetch("w1")  # j1 runs on w1, j2 waits for the key's one slot
        ((_, first),) = m._runs()
        m.r.zadd(first.job.queue.active, {first.id: 0}, xx=True)  # w1's heartbeat is late
        m.fetch("w2")  # delivers j1 again, to w2; j2 still waits
        assert [d.id for d in m.fleet.workers["w2"].runs] == [first.id]
        m.limits_hold_fleet_wide()
        m.heartbeat("w1")  # late: told its lease was taken over, it stops its run
        assert not m.fleet.workers["w1"].runs, "a fenced run went on after its heartbeat"
        again = m.fleet.workers["w2"].runs[0]
        m.fleet.end_run("w2", again, Settlement.finished(b"1"))
        m.fetch("w2")  # the slot is free: j2 starts, alone
        m.jobs_move_as_jobs_may()
        m.limits_hold_fleet_wide()
    finally:
        m.teardown()


def test_a_refused_chord_enqueues_nothing(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    app = kubeq.App(redis_url)

    @app.task(queue="m", name="m.task")
    def task(*args: object) -> None: ...

    with pytest.raises((ValueError, TypeError)):
        kubeq.chord([task.s(1)], task.s(float("nan"))).delay(app)
    s = app.queue("m").stats()
    assert s.backlog == 0, f"the refused chord left {s.backlog} members enqueued"
    app.close()
    r.close()


def test_a_chord_callback_gets_every_members_result(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(known, "KNOWN_ITEM_11", False)
    Intersections.url = redis_url
    m = Intersections()
    try:
        m.chord("q", 1, True)  # one member, its result kept briefly
        m.fetch("w1")
        ((name, member),) = m._runs()
        m.fleet.end_run(name, member, Settlement.finished(b"1"))
        m.hand_off("w1")  # the callback is released
        m.jobs_move_as_jobs_may()
        m.results_expire()  # the member's result runs out before the callback starts
        m.jobs_move_as_jobs_may()
        m.fetch("w1")  # the callback starts with its members' results
    finally:
        m.teardown()


def test_an_aborted_attempt_keeps_its_record_through_its_hand_off(redis_url: str) -> None:
    """A chord member with a short result TTL is aborted while it runs; the sweep hands its
    end off; the result TTLs pass: the record stays while the attempt still holds it (the
    worker's heartbeat must still read the abort, and stats count it in flight)."""
    Intersections.url = redis_url
    m = Intersections()
    try:
        m.chord("q", 1, True)
        m.fetch("w1")
        ((_, member),) = m._runs()
        m.ledger.entries[member.id].aborted = m.app.job(member.id, "q").abort()
        m.sweep("w1")
        m.results_expire()
        assert m.r.exists(QueueKeys.of("q").job(member.id)), "the running attempt's record expired"
        m.jobs_move_as_jobs_may()
        m.heartbeat("w1")  # it reads the abort and stops the run
    finally:
        m.teardown()
