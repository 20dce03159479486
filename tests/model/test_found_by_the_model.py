"""Cases the state machine found, pinned as plain tests so they fail every time, not only when
Hypothesis happens to reach them.

An ack naming a job whose key is garbage, for an id that is not held by anyone (it waits in
the ready set: a late ack from a worker whose delivery was taken over, after the job's key
was overwritten). The script dead-letters the entry, which is right, but must not leave it in
the ready set too: a job is in exactly one state set, and stats must count it once.
"""

from __future__ import annotations

import redis

import kubeq
from kubeq import defaults
from kubeq.keys import QueueKeys, ready_score
from kubeq.outcomes import Settlement
from kubeq.scripts import LUA, run_pipeline


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
