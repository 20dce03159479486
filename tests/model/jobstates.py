"""The job state machine of the model tier: the real Lua scripts on a real redis-server,
driven by Hypothesis next to the pure model in jobmodel.py, compared after every step.
test_job_states.py runs it (and its garbage-writing variant).

The steps are what workers, producers and operators do: enqueue (now or delayed), fetch,
heartbeat, ack (finished, retry now or later, failed = dead-letter, requeue = a SIGTERM
hand-back, release = a dead pool child), lease expiry, cancel and requeue of a dead letter,
a child enqueued with ``depends_on`` and a worker's hand-off of ended parents
(``kubeq.worker.handoff.hand_off``, which releases or cancels their children).
Scripts are called through ``kubeq.store.scripts`` with the worker's own seams
(``wire.fetch_args``, ``wire.parse_fetch_reply``, ``wire.heartbeat_args``,
``Settlement.ack_fields``).

Invariants after every step: each job is in exactly the one set its status names (or none
once finished or cancelled; deferred children in the deferred set) and its counters are the
model's; the hand-off set holds exactly the ended jobs whose children wait for it;
``read_stats`` counts what the model counts; an outcome from a superseded lease changes
nothing; nothing leaves the system except through a terminal state; a lease token is never
issued to two deliveries.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
import redis
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from redis import asyncio as aioredis

import kubeq
from kubeq import defaults
from kubeq.options import Call, TaskOptions
from kubeq.outcomes import Outcome, Settlement
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, run_pipeline
from kubeq.store.wire import fetch_args, heartbeat_args, parse_fetch_reply
from kubeq.worker import handoff
from tests.model.jobmodel import ACTIVE, FAILED, QUEUED, Model

QUEUE = "m"
IDS = [f"j{i}" for i in range(8)]
CHILDREN = [f"c{i}" for i in range(4)]
WORKERS = ["w1", "w2"]
LEASE_MS = 60_000
HOUR_S = 3600.0


def settlement(outcome: Outcome, result: bytes, far: bool) -> Settlement:
    """How a worker would end a delivery with ``outcome``."""
    if outcome is Outcome.FINISHED:
        return Settlement.finished(result)
    if outcome is Outcome.RETRY:
        return Settlement.retry("boom", "tb", HOUR_S if far else 0.0)
    if outcome is Outcome.FAILED:
        return Settlement.failed("boom", "dead-lettered by the model test")
    return Settlement(outcome, "its process died")


@dataclass(frozen=True)
class Held:
    """A delivery a simulated worker holds: it may have been superseded since."""

    worker: str
    id: str
    lease: str


class JobStates(RuleBasedStateMachine):
    url: str  # the test's redis-server, set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.r = redis.Redis.from_url(self.url)
        self.r.flushall()
        self.app = kubeq.App(self.url)
        self.q = self.app.queue(QUEUE)
        self.keys = QueueKeys.of(QUEUE)
        self.model = Model()
        self.held: list[Held] = []
        self.garbage: set[bytes] = set()
        """Ids written by hand that must never run: dead-lettered once a fetch reaches them."""
        self.corrupted: set[bytes] = set()
        """Garbage made of a job while it was active: it stays active until its ack or its
        lease's expiry settles it (dead-lettered)."""

    def teardown(self) -> None:
        self.app.close()
        self.r.close()

    def _call(self, name: str, keys: list[str], args: list[object]) -> object:
        return run_pipeline(self.r, [(LUA[name], keys, args)])[0]

    # -- rules ----------------------------------------------------------------------------

    @initialize(job_id=st.sampled_from(IDS))
    def first_job(self, job_id: str) -> None:
        self.enqueue(job_id, 2, False)

    @rule(
        job_id=st.sampled_from(IDS),
        max_deliveries=st.integers(1, 3),
        delayed=st.booleans(),
    )
    def enqueue(self, job_id: str, max_deliveries: int, delayed: bool) -> None:
        assume(job_id.encode() not in self.garbage)  # (what replaces garbage is not modelled)
        call = Call(
            "m.task",
            (job_id,),
            queue=QUEUE,
            job_id=job_id,
            max_deliveries=max_deliveries,
            delay=HOUR_S if delayed else None,
        )
        self.model.enqueue(job_id, max_deliveries, delayed)  # a live id: nothing changes
        self.q.enqueue_many([call])

    @precondition(lambda self: self.model.jobs)
    @rule(
        child=st.sampled_from(CHILDREN),
        data=st.data(),
        allow_failure=st.booleans(),
        max_deliveries=st.integers(1, 3),
    )
    def enqueue_child(
        self, child: str, data: st.DataObject, allow_failure: bool, max_deliveries: int
    ) -> None:
        """``depends_on`` on one to three jobs (children may be parents too)."""
        assume(child.encode() not in self.garbage)  # (as in enqueue: not modelled)
        parents = data.draw(
            st.lists(st.sampled_from(sorted(self.model.jobs)), min_size=1, max_size=3, unique=True)
        )
        call = Call(
            "m.task",
            (child,),
            queue=QUEUE,
            job_id=child,
            max_deliveries=max_deliveries,
            depends_on=[self.q.job(p) for p in parents],
            allow_failure=allow_failure,
        )
        if not self.model.enqueue_child(child, parents, allow_failure, max_deliveries):
            with pytest.raises(ValueError, match=r"already exists|cannot depend on itself"):
                self.app.enqueue_many([call])
            return
        self.app.enqueue_many([call])

    @precondition(lambda self: self.model.handoff)
    @rule(data=st.data())
    def hand_off(self, data: st.DataObject) -> None:
        """A worker's second step for some of the ended parents (the acking worker's, or a
        later sweep's): resolve their children on the children's queue."""
        ids = data.draw(
            st.lists(st.sampled_from(sorted(self.model.handoff)), min_size=1, unique=True)
        )

        async def run() -> None:
            client = aioredis.Redis.from_url(self.url)
            try:
                await handoff.hand_off(client, self.keys, ids, lambda _name: TaskOptions())
            finally:
                await client.aclose()

        asyncio.run(run())
        for job_id in ids:
            self.model.hand_off(job_id)

    @rule(worker=st.sampled_from(WORKERS), want=st.integers(1, 3))
    def fetch(self, worker: str, want: int) -> None:
        self.model.before_pop()
        could = self.model.ids(QUEUED)
        bad_waiting = self._ready_garbage()
        bad_expired = {g for g in self.corrupted if self.r.zscore(self.keys.active, g) == 0}
        busy = sum(1 for h in self.held if h.worker == worker)
        keys, args = fetch_args(worker, want, LEASE_MS, busy, defaults.WORKER_TTL_MS, [self.keys])
        raw = self._call("fetch", keys, args)
        reply = parse_fetch_reply(raw, [self.keys])  # type: ignore[arg-type]
        got = [j.id for j in reply.jobs]
        assert len(set(got)) == len(got), f"a fetch delivered a job twice: {got}"
        for fetched in reply.jobs:
            assert fetched.id.encode() not in self.garbage, (
                f"fetch delivered the garbage entry {fetched.id!r} instead of dead-lettering it"
            )
            assert fetched.id in could, f"fetch delivered {fetched.id}, not a queued job"
            job = self.model.deliver(fetched.id, fetched.lease, worker)
            assert fetched.attempts == job.attempts, (fetched, job)
            assert fetched.deliveries == job.deliveries, (fetched, job)
            assert fetched.payload, "a delivery without its payload"
            # a job taken back under its token is held twice: acking both is harmless
            self.held.append(Held(worker, fetched.id, fetched.lease))
        for g in bad_expired:
            assert self._places(g) == ["dead"], f"expired garbage {g!r} in {self._places(g)}"
            self.corrupted.discard(g)
        if not bad_waiting:  # (how a fetch counts a dead-lettered bad entry is its own choice)
            assert len(got) == min(want, len(could)), (
                f"asked for {want} with {len(could)} queued ({sorted(could)}), got {got}"
            )
            assert reply.remaining == len(could) - len(got)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from(sorted({h.worker for h in self.held})))
        owned = [(h.id, h.lease) for h in self.held if h.worker == worker]
        keys, args = heartbeat_args(self.keys, worker, len(owned), LEASE_MS, owned)
        lost = {x.decode() for x in self._call("heartbeat", keys, args)}  # type: ignore[attr-defined]
        assert lost == self.model.heartbeat(owned)

    @precondition(lambda self: self.held)
    @rule(
        data=st.data(),
        outcome=st.sampled_from(list(Outcome)),
        far=st.booleans(),
    )
    def ack(self, data: st.DataObject, outcome: Outcome, far: bool) -> None:
        held = data.draw(st.sampled_from(self.held))
        self.held.remove(held)
        # a task's result, or null (the most common one, which ack.lua does not store)
        result = b"null" if data.draw(st.booleans()) else f'"{held.id}:{held.lease}"'.encode()
        fields = settlement(outcome, result, far).ack_fields(held.id, held.lease)
        if held.id.encode() in self.garbage:  # its job was made garbage while it ran
            flags = self._call("ack", self.keys.script_keys, [self.keys.base, 1, *fields])
            assert flags != [1], f"an ack was applied to a job that is garbage: {held}"
            self.corrupted.discard(held.id.encode())
            assert self._places(held.id.encode()) == ["dead"]
            return
        want = self.model.ack(held.id, held.lease, outcome.value, result, far)
        flags = self._call("ack", self.keys.script_keys, [self.keys.base, 1, *fields])
        assert flags == [want], (
            f"ack {outcome.value} of {held} answered {flags}, the model says {want} "
            "(0 = refused: its lease was superseded)"
        )

    @precondition(lambda self: self.model.ids(ACTIVE) or self.corrupted)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        """The lease deadline passes (the worker hung or died): moved into the past."""
        choices = sorted(self.model.ids(ACTIVE)) + sorted(g.decode() for g in self.corrupted)
        job_id = data.draw(st.sampled_from(choices))
        self.r.zadd(self.keys.active, {job_id: 0}, xx=True)
        if job_id in self.model.jobs:
            self.model.jobs[job_id].expired = True

    @precondition(lambda self: self.model.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.model.jobs)))
        assert self.q.job(job_id).cancel() == self.model.cancel(job_id)

    @precondition(lambda self: self.model.ids(FAILED))
    @rule(data=st.data())
    def requeue_dead(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.model.ids(FAILED))))
        assert self.q.requeue_dead([job_id]) == self.model.requeue_dead(job_id)

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def each_job_in_exactly_its_set(self) -> None:
        k = self.keys
        actual = {
            name: {m for m in self.r.zrange(key, 0, -1) if m not in self.garbage}
            for name, key in (
                ("ready", k.ready),
                ("delayed", k.delayed),
                ("active", k.active),
                ("dead", k.dead),
                ("deferred", k.deferred),
            )
        }
        expected = self.model.sets()
        for name, ids in expected.items():
            got = {m.decode() for m in actual[name]}
            assert got == ids, f"{name} set holds {sorted(got)}, the model says {sorted(ids)}"

    @invariant()
    def hand_offs_are_the_models(self) -> None:
        got = {m.decode() for m in self.r.zrange(self.keys.handoff, 0, -1)}
        assert got == self.model.handoff, (
            f"handoff set holds {sorted(got)}, the model says {sorted(self.model.handoff)}"
        )

    @invariant()
    def counters_and_leases_match(self) -> None:
        for job in self.model.jobs.values():
            status, attempts, deliveries, lease = self.r.hmget(
                self.keys.job(job.id), "status", "attempts", "deliveries", "lease"
            )
            assert status is not None, f"job {job.id} vanished while {job.status}"
            assert status.decode() == job.status, (job, status)
            if job.status == "finished" and (job.attempts, job.deliveries) == (1, 1):
                # the usual end keeps neither count: readers take a finished job without
                # attempts as one run on its first delivery (docs/protocol.md)
                assert (attempts, deliveries) == (None, None), (job, attempts, deliveries)
            else:
                assert int(attempts or 0) == job.attempts, (job, attempts)
                assert int(deliveries or 0) == job.deliveries, (job, deliveries)
            if job.status == ACTIVE:
                assert (lease or b"").decode() == job.lease, (job, lease)
            if job.status == "finished":
                stored = self.r.hget(self.keys.job(job.id), "result")
                # a null result is not stored: a finished job without one returned null
                assert stored == (None if job.result == b"null" else job.result), (job, stored)

    @invariant()
    def stats_count_what_the_model_counts(self) -> None:
        s = kubeq.read_stats(self.r, [QUEUE])[0]
        got = {
            "backlog": s.backlog,
            "in_flight": s.in_flight,
            "delayed": s.delayed,
            "dead": s.dead,
            "deferred": s.deferred,
        }
        want = self.model.stats()
        want["dead"] += len(self._dead_garbage())
        want["backlog"] += len(self._ready_garbage())
        want["in_flight"] += len(self.corrupted)
        assert got == want, f"stats {got}, the model says {want}"

    def _dead_garbage(self) -> set[bytes]:
        return {g for g in self.garbage if self.r.zscore(self.keys.dead, g) is not None}

    def _ready_garbage(self) -> set[bytes]:
        return {g for g in self.garbage if self.r.zscore(self.keys.ready, g) is not None}

    def _places(self, member: bytes) -> list[str]:
        return [
            name
            for name, key in (
                ("ready", self.keys.ready),
                ("delayed", self.keys.delayed),
                ("active", self.keys.active),
                ("dead", self.keys.dead),
            )
            if self.r.zscore(key, member) is not None
        ]

    @invariant()
    def garbage_is_waiting_or_dead_letter(self) -> None:
        for g in self.garbage:
            places = self._places(g)
            allowed = (["active"], ["dead"]) if g in self.corrupted else (["ready"], ["dead"])
            assert places in allowed, (
                f"garbage entry {g!r} is in {places or 'no set'}: it must wait where it was "
                "until a fetch or its ack reaches it, then be dead-lettered with its reason"
            )
