"""Fair queues in the intersections machine: jobs with a fairness key meet partitions,
concurrency and rate limits, short result TTLs, abort, cancel, purge, lapsed leases and
workflows (callbacks, chains), beside the machine's own jobs without a key.

Extra steps: enqueue a keyed job (plain, limited by a key, rate limited; any queue, a short
TTL, callbacks), a keyed chain, a change of weights. After every step, on every queue the
fleet consumes (``lua/_fair.lua``'s layout): every ready job with a key is in its key's set
and its key in the index, a ready job without one is not (no path made a keyed job ready
outside its key's flow), no id is in two keys' sets, every key of the index has a set, and
when no key has ready jobs no fairness state is left; after a drain none at all.
"""

from __future__ import annotations

import redis
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

import kubeq
from kubeq.store.keys import QueueKeys
from tests.model.intersections import CONSUMED, KEYS, QUEUES, SHORT_TTL, Intersections

FAIR_KEYS = ["t1", "t2", "t3"]
FOFF = 10 * 10**13
"""Where a keyed job's ready score starts (lua/_fair.lua)."""


def fair_keys_left(r: redis.Redis, name: str) -> list[bytes]:
    """The fairness keys of a queue other than its weights."""
    keys = QueueKeys.of(name)
    return sorted(k for k in r.keys(keys.base + "fair*") if k != keys.fair_weights.encode())


def check_fair_state(r: redis.Redis, name: str) -> None:
    keys = QueueKeys.of(name)
    index = {m.decode() for m in r.zrange(keys.fair, 0, -1)}
    members: dict[str, str] = {}
    for key in index:
        ids = r.zrange(keys.fair_queue(key), 0, -1)
        assert ids, f"{name}: key {key} is in the index with no ready job"
        for i in ids:
            assert i.decode() not in members, f"{name}: {i!r} in two keys' sets"
            members[i.decode()] = key
    for raw, score in r.zrange(keys.ready, 0, -1, withscores=True):
        job_id = raw.decode()
        fk = r.hget(keys.job(job_id), "fk")
        if score >= FOFF:
            assert fk is not None, f"{name}: {job_id} is scored as keyed and has no key"
            assert members.get(job_id) == fk.decode(), f"{name}: ready {job_id} not in its flow"
        else:
            assert fk is None, f"{name}: {job_id} (key {fk!r}) is ready outside its key's flow"
    if not index:
        left = fair_keys_left(r, name)
        assert not left, f"{name}: no key has ready jobs, yet {left} are left"


class FairIntersections(Intersections):
    @rule(
        kind=st.sampled_from(["plain", "limited", "rated"]),
        queue=st.sampled_from(QUEUES),
        fair=st.sampled_from(FAIR_KEYS),
        key=st.sampled_from(KEYS),
        short_ttl=st.booleans(),
        on_success=st.sampled_from([None, *QUEUES]),
    )
    def enqueue_keyed(
        self,
        kind: str,
        queue: str,
        fair: str,
        key: str,
        short_ttl: bool,
        on_success: str | None,
    ) -> None:
        call = self.tasks[kind].s().set(queue=queue, job_id=self._id("f"), fair_key=fair)
        if kind == "limited":
            call = call.set(limit_key=key)
        if short_ttl:
            call = call.set(result_ttl=SHORT_TTL)
        if on_success:
            call = call.set(on_success=self._callback(on_success).set(fair_key=fair))
        (job,) = self.app.enqueue_many([call])
        self.ledger.add(job.id, queue, call, job.queue)

    @rule(queue=st.sampled_from(QUEUES), fair=st.sampled_from(FAIR_KEYS))
    def chain_keyed(self, queue: str, fair: str) -> None:
        calls = [self.tasks["plain"].s(i).set(queue=queue, fair_key=fair) for i in range(2)]
        first = kubeq.chain(*calls).signature().set(job_id=self._id("fc"))
        (job,) = self.app.enqueue_many([first])
        self.ledger.add(job.id, queue, first, job.queue)

    @rule(queue=st.sampled_from(QUEUES), fair=st.sampled_from(FAIR_KEYS), w=st.integers(1, 4))
    def weigh(self, queue: str, fair: str, w: int) -> None:
        self.app.queue(queue).set_weights({fair: w})

    @rule()
    def drain(self) -> None:
        super().drain()
        for name in CONSUMED:
            if not self.r.zcard(QueueKeys.of(name).ready):
                assert not fair_keys_left(self.r, name), f"{name}: state left after a drain"

    @invariant()
    def fair_state_is_the_ready_jobs(self) -> None:
        for name in CONSUMED:
            check_fair_state(self.r, name)
