"""The heartbeat checks only the keys it writes, and only when Redis refuses a write
(heartbeat.lua): presence data of the wrong type is rebuilt, garbage in a set it does not
write leaves the renewals alone (the fetch reports it), and garbage in the active set stops
it before any job set changes, naming the key to fix."""

from __future__ import annotations

import pytest
import redis

from kubeq import defaults
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, run_pipeline
from kubeq.store.wire import fetch_args, heartbeat_args, parse_fetch_reply

LEASE_MS = 30_000


def _leased(r: redis.Redis, keys: QueueKeys) -> tuple[str, str, float]:
    """Enqueue one job and lease it to worker w1; returns (id, lease token, lease score)."""
    r.zadd(keys.ready, {"j1": 0})
    r.hset(keys.job("j1"), mapping={"status": "queued", "payload": "{}", "lease": 0})
    fk, fa = fetch_args("w1", 1, 1_000, 0, defaults.WORKER_TTL_MS, [keys])
    (job,) = parse_fetch_reply(run_pipeline(r, [(LUA["fetch"], fk, fa)])[0], [keys]).jobs
    score = r.zscore(keys.active, job.id)
    assert score is not None
    return job.id, job.lease, score


def _beat(r: redis.Redis, keys: QueueKeys, owned: list[tuple[str, str]]) -> object:
    hk, ha = heartbeat_args(keys, "w1", len(owned), LEASE_MS, owned, 1)
    return run_pipeline(r, [(LUA["heartbeat"], hk, ha)], raise_errors=False)[0]


def test_presence_keys_of_the_wrong_type_are_rebuilt(r: redis.Redis) -> None:
    keys = QueueKeys.of("hbkeys")
    job_id, lease, before = _leased(r, keys)
    for key in (keys.workers, keys.busy, keys.base + "transit:w1"):
        r.delete(key)
        r.set(key, "garbage")
    assert _beat(r, keys, [(job_id, lease)]) == []
    assert r.zscore(keys.workers, "w1") is not None
    assert r.hget(keys.busy, "w1") == b"1"
    assert r.type(keys.base + "transit:w1") == b"none"
    renewed = r.zscore(keys.active, job_id)
    assert renewed is not None and renewed > before


@pytest.mark.parametrize("key", ["ready", "delayed", "dead", "wake", "leases"])
def test_garbage_in_a_key_the_heartbeat_does_not_write_leaves_renewals_alone(
    key: str, r: redis.Redis
) -> None:
    keys = QueueKeys.of("hbkeys")
    job_id, lease, before = _leased(r, keys)
    r.delete(getattr(keys, key))
    r.hset(getattr(keys, key), "not", "this")
    assert _beat(r, keys, [(job_id, lease)]) == []
    renewed = r.zscore(keys.active, job_id)
    assert renewed is not None and renewed > before


def test_garbage_in_the_active_set_stops_the_heartbeat_naming_it(r: redis.Redis) -> None:
    keys = QueueKeys.of("hbkeys")
    job_id, lease, _ = _leased(r, keys)
    r.delete(keys.active)
    r.set(keys.active, "garbage")
    reply = _beat(r, keys, [(job_id, lease)])
    assert isinstance(reply, redis.ResponseError)
    assert f"{keys.active} holds a string, not a sorted set" in str(reply)
    assert r.get(keys.active) == b"garbage"
    assert r.hget(keys.job(job_id), "status") == b"active"
