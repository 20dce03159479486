"""The lean job record: a job hash stores no field at its default, and every reader (the Lua
scripts, ``Job.info``, ``result()``) takes a missing field as its default; a done-list exists
only for a job somebody waits for (docs/protocol.md, bench/README.md "Where a job's bytes go").
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker


def test_a_default_job_stores_only_what_differs_from_the_defaults(
    app: kubeq.App, r: redis.Redis
) -> None:
    job = app.queue("lean").enqueue(qtasks.add)
    stored = r.hgetall(QueueKeys.of("lean").job(job.id))
    # (and "sent": a one-job call keeps its send token on its job, for its resend)
    assert sorted(stored) == [b"enqueued_at", b"payload", b"sent", b"status"]
    assert json.loads(stored[b"payload"]) == {"task": "qtasks.add"}
    assert r.object("encoding", QueueKeys.of("lean").job(job.id)) == b"listpack"
    info = job.info()
    assert (info.priority, info.attempts, info.deliveries) == (5, 0, 0)
    assert (info.status, info.task) == ("queued", "qtasks.add")


def test_options_that_differ_from_the_defaults_are_stored(app: kubeq.App, r: redis.Redis) -> None:
    job = app.queue("lean").enqueue_call(qtasks.add, (1,), {"y": 2}, priority=9, max_deliveries=2)
    stored = r.hgetall(QueueKeys.of("lean").job(job.id))
    assert (stored[b"priority"], stored[b"max_deliveries"]) == (b"9", b"2")
    payload = json.loads(stored[b"payload"])
    assert (payload["args"], payload["kwargs"]) == ([1], {"y": 2})
    assert job.info().priority == 9


def test_a_job_at_the_default_result_ttl_is_kept_a_day_after_any_end(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """No result_ttl field (the default, a day): each way a job ends still gives its record
    the default TTL, and a job with a result_ttl of its own keeps and uses it."""
    keys = QueueKeys.of("lean")
    q = app.queue("lean")
    done = q.enqueue(qtasks.add, 1, 2)
    cancelled = q.enqueue(qtasks.add, 3, 4)
    aborted = q.enqueue(qtasks.add, 5, 6)
    expired = q.enqueue_call(qtasks.add, (7, 8), expires=0.05)
    failed = q.enqueue(qtasks.always_fail)
    # a parent with a callback keeps its record until the hand-off, which gives it its TTL
    parent = q.enqueue_call(qtasks.add, (2, 2), on_success=qtasks.add.si(0, 0).set(queue="lean"))
    own = q.enqueue_call(qtasks.add, (9, 9), result_ttl=600)
    assert b"result_ttl" not in r.hkeys(keys.job(done.id))
    assert r.hget(keys.job(own.id), "result_ttl") == b"600"
    assert cancelled.cancel() and aborted.abort()
    time.sleep(0.1)  # past expired's expiry before a worker fetches it
    start_worker("--queue", "lean")
    assert done.result(timeout=60) == 3 and own.result(timeout=60) == 18
    wait_until(lambda: expired.status() == "expired", 60, "the expired job to end")
    wait_until(lambda: failed.status() == "failed", 60, "the failing job to be dead-lettered")
    wait_until(lambda: r.ttl(keys.job(parent.id)) > 0, 60, "the parent's hand-off")
    assert r.ttl(keys.job(failed.id)) == -1  # a dead letter stays until it is dealt with
    for job in (done, cancelled, aborted, expired, parent):
        assert 86_400 - 60 < r.ttl(keys.job(job.id)) <= 86_400, (job.id, job.status())
    assert 0 < r.ttl(keys.job(own.id)) <= 600


def _fetch(app: kubeq.App, worker: str) -> list[Any]:
    keys = QueueKeys.of("lean")
    args = [worker, 1, 60_000, 0, 60_000, 1, keys.base, "0", ""]
    return list(app.scripts.fetch(keys=keys.script_keys, args=args))


def test_a_job_without_max_deliveries_is_buried_after_the_default_five_lost(
    app: kubeq.App, r: redis.Redis
) -> None:
    """No max_deliveries field: the fetch that finds its lease expired counts the lost
    deliveries against the default, 5 (not 1)."""
    keys = QueueKeys.of("lean")
    job = app.queue("lean").enqueue(qtasks.add, 1, 1)
    for n in range(1, 6):
        got = _fetch(app, f"w{n}")
        assert got[3] == job.id.encode(), f"delivery {n}: {got}"
        r.zadd(keys.active, {job.id: 0})  # its worker died: the lease runs out
    _fetch(app, "w6")
    info = job.info()
    assert info.status == "failed", info
    assert "delivered 5 times without an acknowledgement" in info.reason


def test_the_usual_end_keeps_no_counts_and_every_reader_reads_one_run(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """A job that ran once on its first delivery (the usual end) keeps neither attempts nor
    deliveries, and Job.info and a search read 1 and 1; a job retried once, or delivered
    again after its lease ran out, keeps the counts that say so."""
    keys = QueueKeys.of("lean")
    q = app.queue("lean")
    # the lapsed job: a worker that died leased it first, so its run is its second delivery
    lapsed = q.enqueue(qtasks.add, 3, 4)
    assert _fetch(app, "dead-worker")[3] == lapsed.id.encode()
    r.zadd(keys.active, {lapsed.id: 0})  # the dead worker's lease runs out
    once = q.enqueue(qtasks.add, 1, 2)
    retried = q.enqueue(qtasks.fail_until, "lean-retried", 1)
    start_worker("--queue", "lean")
    assert once.result(timeout=60) == 3 and retried.result(timeout=60) == 2
    assert lapsed.result(timeout=60) == 7
    stored = r.hgetall(keys.job(once.id))
    assert b"attempts" not in stored and b"deliveries" not in stored, stored
    assert stored[b"status"] == b"finished"
    assert r.hmget(keys.job(retried.id), "attempts", "deliveries") == [b"2", b"2"]
    assert r.hmget(keys.job(lapsed.id), "attempts", "deliveries") == [b"1", b"2"]
    counts = {j.id: (j.info().attempts, j.info().deliveries) for j in (once, retried, lapsed)}
    assert counts == {once.id: (1, 1), retried.id: (2, 2), lapsed.id: (1, 2)}
    found = {j.id: (j.attempts, j.deliveries) for j in q.find("finished").jobs}
    assert found == counts


def test_a_requeued_dead_letter_that_then_runs_once_reads_one_run(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """A requeue from the dead letters drops its counters (absent is 0): its run once
    after that is the usual end, so no count is left behind to be read as 0 attempts."""
    keys = QueueKeys.of("lean")
    q = app.queue("lean")
    job = q.enqueue(qtasks.fail_until, "lean-dead", 3)  # its 3 attempts all fail
    start_worker("--queue", "lean")
    wait_until(lambda: job.status() == "failed", 60, "the job to be dead-lettered")
    assert q.requeue_dead([job.id]) == 1
    assert job.result(timeout=60) == 4
    stored = r.hgetall(keys.job(job.id))
    assert b"attempts" not in stored and b"deliveries" not in stored, stored
    assert (job.info().attempts, job.info().deliveries) == (1, 1)


def test_a_job_nobody_waits_for_leaves_no_done_list(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    start_worker("--queue", "lean")
    job = app.queue("lean").enqueue(qtasks.add, 2, 3)
    wait_until(lambda: job.status() == "finished", 60, "the job to finish")
    assert not r.exists(QueueKeys.of("lean").done(job.id))
    assert job.result(timeout=10) == 5


def test_one_ack_of_many_pushes_the_done_list_of_the_watched_job_only(
    app: kubeq.App, r: redis.Redis
) -> None:
    """The usual acks of a batch leave the active set together, and one EXISTS over their
    watch keys decides whether any done-list is pushed: the watched job's is, the others'
    are not, and every one of them finished with its result."""
    keys = QueueKeys.of("lean")
    jobs = [app.queue("lean").enqueue(qtasks.add, i, 1) for i in range(6)]
    args = ["w1", 6, 60_000, 0, 60_000, 1, keys.base, "0", ""]
    got = list(app.scripts.fetch(keys=keys.script_keys, args=args))
    leases = {got[i + 1].decode(): got[i + 2] for i in range(2, len(got), 7)}
    assert sorted(leases) == sorted(j.id for j in jobs)
    watched = jobs[3]
    r.set(keys.watch(watched.id), "1", ex=60)  # result() waits for this one

    def ack(batch: list[kubeq.Job]) -> list[int]:
        acks: list[Any] = [keys.base, len(batch)]
        for j in batch:
            acks += [j.id, leases[j.id], "finished", str(int(j.id == watched.id))]
        return [int(f) for f in app.scripts.ack(keys=keys.script_keys, args=acks)]

    assert ack(jobs[:3]) == [1, 1, 1]  # nobody waits for these
    assert ack(jobs[3:]) == [1, 1, 1]  # one of these is watched
    assert r.zcard(keys.active) == 0
    assert [bool(r.exists(keys.done(j.id))) for j in jobs] == [j is watched for j in jobs]
    assert [j.status() for j in jobs] == ["finished"] * 6
    assert watched.result(timeout=1) == 1 and jobs[0].result(timeout=1) == 0
    assert ack(jobs[:1]) == [4]  # a resend of a recorded outcome changes nothing


def test_a_waiter_that_blocks_before_the_end_is_woken_by_it(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """result() watches the job, then blocks on its done-list: the end (here long after the
    wait began) pushes it, for that waiter and any other."""
    keys = QueueKeys.of("lean")
    job = app.queue("lean").enqueue(qtasks.add, 20, 22)
    got: list[Any] = []
    waiters = [threading.Thread(target=lambda: got.append(job.result(timeout=120))) for _ in "ab"]
    for t in waiters:
        t.start()
    wait_until(lambda: r.exists(keys.watch(job.id)), 30, "the waiters to watch the job")
    start_worker("--queue", "lean")
    for t in waiters:
        t.join(150)
    assert got == [42, 42]
    assert r.llen(keys.done(job.id)) == 1
    assert 0 < r.ttl(keys.done(job.id)) <= 86_400


def test_a_null_result_is_not_stored_and_every_reader_reads_null(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """None (JSON null), the most common result, costs a finished record no bytes: a finished
    job without ``result`` returned null for ``result()``, ``info()``, a chord's callback (the
    member's result kept by the hand-off) and a chord's link made after its member ended
    (depend.lua reads the member's record)."""
    keys = QueueKeys.of("lean")
    q = app.queue("lean")
    start_worker("--queue", "lean")
    none = q.enqueue(qtasks.record_order, "null", 1)
    seven = q.enqueue(qtasks.add, 3, 4)
    assert none.result(timeout=60) is None and seven.result(timeout=60) == 7
    assert b"result" not in r.hkeys(keys.job(none.id))
    assert r.hget(keys.job(seven.id), "result") == b"7"
    assert (none.info().result, seven.info().result) == ("null", "7")
    members = [qtasks.record_order.s("null", 2), qtasks.add.s(1, 2)]
    body = qtasks.collect_any.s("null")
    c = kubeq.chord([m.set(queue="lean") for m in members], body.set(queue="lean")).delay(app)
    assert c.result(timeout=60) is None
    assert r.lrange("test:chord:null", 0, -1) == [b"[null, 3]"]
    member = "lean\tlate-callback\tr"  # a chord's callback, linked after the member ended
    got = app.scripts.depend(keys=[keys.job(none.id)], args=[keys.base, none.id, member, 10, "r"])
    assert got == [b"finished", b"null"]
