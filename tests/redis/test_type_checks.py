"""Garbage of every type in a queue's keys, against the scripts that check them
(_prelude.lua: check_queue, check_enqueue, zset_read, present): a job set holding anything
but a sorted set stops enqueue, fetch and ack before anything changes, naming the key, when
the call may write that set (the usual ack, a finished job, writes only the active set); presence
data of the wrong type (wake list, workers, busy counts, lease counter, transit log) is
dropped and written again by the fetch, and lease tokens stay unique."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import qtasks
import redis

import kubeq
from kubeq import defaults
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, run_pipeline
from kubeq.store.wire import fetch_args, parse_fetch_reply

WRITE: dict[str, Callable[[redis.Redis, str], object]] = {
    "string": lambda r, k: r.set(k, "garbage"),
    "list": lambda r, k: r.rpush(k, "garbage"),
    "hash": lambda r, k: r.hset(k, "garbage", "1"),
    "set": lambda r, k: r.sadd(k, "garbage"),
    "zset": lambda r, k: r.zadd(k, {"garbage": 1}),
}


def _fetch(r: redis.Redis, keys: QueueKeys, want: int = 1, seq: int = 0) -> object:
    fk, fa = fetch_args("w1", want, 30_000, 0, defaults.WORKER_TTL_MS, [keys], seq=seq)
    return run_pipeline(r, [(LUA["fetch"], fk, fa)], raise_errors=False)[0]


def _ack(
    r: redis.Redis, keys: QueueKeys, job_id: str, lease: str, outcome: str = "retry"
) -> object:
    args = [keys.base, 1, job_id, lease, outcome, "3"]
    if outcome != "finished":  # a finished delivery takes 4 arguments, any other 7
        args += ["", "", "+1000"]
    return run_pipeline(r, [(LUA["ack"], keys.script_keys, args)], raise_errors=False)[0]


def _leased(r: redis.Redis, keys: QueueKeys, seq: int = 0) -> tuple[str, str]:
    reply = _fetch(r, keys, seq=seq)
    assert not isinstance(reply, Exception), reply
    (job,) = parse_fetch_reply(reply, [keys]).jobs  # type: ignore[arg-type]
    return job.id, job.lease


def _snapshot(r: redis.Redis) -> dict[bytes, bytes | None]:
    return {k: r.dump(k) for k in r.keys("*")}  # type: ignore[misc]


@pytest.mark.parametrize("kind", ["string", "list", "hash", "set"])
@pytest.mark.parametrize("name", ["ready", "delayed", "active", "dead"])
def test_a_job_set_of_another_type_stops_each_script_before_it_changes_anything(
    name: str, kind: str, app: kubeq.App, r: redis.Redis
) -> None:
    keys = QueueKeys.of("typed")
    q = app.queue("typed")
    q.enqueue(qtasks.add, 1, 2)
    ended = q.enqueue(qtasks.add, 3, 4)
    assert ended.cancel()  # an ended job: enqueueing its id again replaces it
    job_id, lease = _leased(r, keys)
    key = getattr(keys, name)
    r.delete(key)
    WRITE[kind](r, key)
    before = _snapshot(r)
    message = f"{key} holds a {kind}, not a sorted set"
    for reply in (_fetch(r, keys), _ack(r, keys, job_id, lease)):
        assert isinstance(reply, redis.ResponseError) and message in str(reply), reply
        assert _snapshot(r) == before
    # an enqueue never writes the active set; it checks each other set when it may write it
    writes = {
        "ready": lambda: q.enqueue(qtasks.add, 5, 6),
        "delayed": lambda: q.enqueue_call(qtasks.add, (5, 6), delay=60),  # a job for later
        "dead": lambda: q.enqueue_call(qtasks.add, (5, 6), job_id=ended.id),  # a replacement
    }
    if name in writes:
        with pytest.raises(Exception, match=message):
            writes[name]()
        assert _snapshot(r) == before


@pytest.mark.parametrize("name", ["delayed", "dead"])
def test_an_enqueue_checks_only_the_sets_it_may_write(
    name: str, app: kubeq.App, r: redis.Redis
) -> None:
    """A job for now with a new id goes to the ready set only: garbage in the delayed set or
    the dead letters is left for the fetch to report (naming the key), and the job waits."""
    keys = QueueKeys.of("usual")
    key = getattr(keys, name)
    r.set(key, "garbage")
    job = app.queue("usual").enqueue(qtasks.add, 1, 2)
    assert job.status() == "queued" and r.zscore(keys.ready, job.id) is not None
    assert r.get(key) == b"garbage"
    reply = _fetch(r, keys)
    assert isinstance(reply, redis.ResponseError)
    assert f"{key} holds a string, not a sorted set" in str(reply)
    assert job.status() == "queued"
    r.delete(key)
    assert _leased(r, keys)[0] == job.id


@pytest.mark.parametrize("name", ["ready", "delayed", "dead"])
def test_the_usual_ack_checks_only_the_active_set_it_writes(
    name: str, app: kubeq.App, r: redis.Redis
) -> None:
    """A finished job of no concurrency limit and no follow-up changes only the active set
    (and its own hash): garbage elsewhere is left for the fetch to report."""
    keys = QueueKeys.of("usual")
    app.queue("usual").enqueue(qtasks.add, 1, 2)
    job_id, lease = _leased(r, keys)
    key = getattr(keys, name)
    r.delete(key)
    r.set(key, "garbage")
    assert _ack(r, keys, job_id, lease, "finished") == [1]
    assert r.hget(keys.job(job_id), "status") == b"finished"
    assert r.zscore(keys.active, job_id) is None
    assert r.get(key) == b"garbage"
    r.delete(key)
    app.queue("usual").enqueue(qtasks.add, 3, 4)
    job_id, lease = _leased(r, keys)
    r.delete(keys.active)
    r.set(keys.active, "garbage")
    reply = _ack(r, keys, job_id, lease, "finished")
    assert isinstance(reply, redis.ResponseError)
    assert f"{keys.active} holds a string, not a sorted set" in str(reply)
    assert r.hget(keys.job(job_id), "status") == b"active"


@pytest.mark.parametrize("kind", ["string", "hash", "set"])
def test_presence_data_of_another_type_is_rebuilt_by_the_fetch_and_leases_stay_unique(
    kind: str, app: kubeq.App, r: redis.Redis
) -> None:
    keys = QueueKeys.of("presence")
    q = app.queue("presence")
    first = q.enqueue(qtasks.add, 1, 2)
    q.enqueue(qtasks.add, 3, 4)
    _, lease = _leased(r, keys)
    transit = keys.base + "transit:w1"
    for key in (keys.workers, keys.busy, keys.leases, transit):
        r.delete(key)
        WRITE[kind](r, key)
    job_id, second = _leased(r, keys, seq=1)
    assert job_id != first.id and second != lease
    assert int(second) > int(lease)  # the counter restarted above every token it issued
    assert r.zscore(keys.workers, "w1") is not None
    assert r.hget(keys.busy, "w1") is not None
    assert r.zrange(transit, 0, -1) == [job_id.encode()]


@pytest.mark.parametrize("kind", ["string", "hash", "set", "zset"])
def test_a_wake_list_of_another_type_is_dropped_by_a_fetch_that_finds_nothing(
    kind: str, r: redis.Redis, app: kubeq.App
) -> None:
    keys = QueueKeys.of("wakeful")
    WRITE[kind](r, keys.wake)
    assert parse_fetch_reply(_fetch(r, keys), [keys]).jobs == []  # type: ignore[arg-type]
    assert r.type(keys.wake) == b"none"  # a worker blocks on it next (BLPOP)
    app.queue("wakeful").enqueue(qtasks.add, 1, 2)
    assert r.type(keys.wake) == b"list"  # the enqueue's wake-up token


def test_lease_tokens_stay_unique_after_the_counter_restarts(
    app: kubeq.App, r: redis.Redis
) -> None:
    """A restarted counter (above every token it issued: the server's time in µs) keeps
    counting: fetches in the same millisecond never share a token."""
    keys = QueueKeys.of("restart")
    for i in range(8):
        app.queue("restart").enqueue(qtasks.add, i, 1)
    r.set(keys.leases, "garbage")
    calls = []
    for w in range(8):
        fk, fa = fetch_args(f"w{w}", 1, 30_000, 0, defaults.WORKER_TTL_MS, [keys])
        calls.append((LUA["fetch"], fk, fa))
    replies = run_pipeline(r, calls)
    leases = [job.lease for raw in replies for job in parse_fetch_reply(raw, [keys]).jobs]
    assert len(leases) == 8
    assert len(set(leases)) == 8, leases
