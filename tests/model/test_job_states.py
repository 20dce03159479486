"""Runs the job state machine (jobstates.py) and ``GarbageJobStates``, the same machine with
what a careless hand or a bug can write into Redis among the jobs: a waiting entry whose job
key has the wrong type, a non-numeric field or an id that is not UTF-8; a running job's key
overwritten; an ack call that settles a good delivery beside a garbage one; and enqueue calls
with values the scripts cannot use, which must be refused naming the field.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule, run_state_machine_as_test

from kubeq import defaults
from kubeq.options import Call
from kubeq.outcomes import Outcome, Settlement
from kubeq.store.keys import ready_score
from tests.model.jobmodel import ACTIVE, QUEUED
from tests.model.jobstates import QUEUE, JobStates, settlement


class GarbageJobStates(JobStates):
    """The same machine with hand-written garbage among the jobs."""

    @rule(kind=st.sampled_from(["wrong type", "non-numeric attempts", "not utf-8"]))
    def garbage_write(self, kind: str) -> None:
        n = len(self.garbage)
        gid = (b"\xff\xfe-" if kind == "not utf-8" else b"g-") + str(n).encode()
        jk = self.keys.base.encode() + b"job:" + gid
        score = ready_score(defaults.PRIORITY, 0)  # the oldest: the next fetch reaches it
        if kind == "wrong type":
            self.r.set(jk, b"garbage")
        else:
            self.r.hset(
                jk,
                mapping={
                    "payload": b'{"task": "m.task", "args": [], "kwargs": {}}',
                    "priority": 5,
                    "status": QUEUED,
                    "enqueued_at": 0,
                    "deliveries": 0,
                    "attempts": "abc" if kind == "non-numeric attempts" else 0,
                    "lease": 0,
                    "max_deliveries": 2,
                    "result_ttl": 60,
                },
            )
        self.r.zadd(self.keys.ready, {gid: score})
        self.garbage.add(gid)

    @precondition(lambda self: self.model.ids(ACTIVE))
    @rule(data=st.data())
    def corrupt_active(self, data: st.DataObject) -> None:
        """A running job's key is overwritten by something that is not a hash."""
        job_id = data.draw(st.sampled_from(sorted(self.model.ids(ACTIVE))))
        jk = self.keys.job(job_id)
        self.r.delete(jk)
        self.r.set(jk, b"overwritten by hand")
        del self.model.jobs[job_id]
        self.garbage.add(job_id.encode())
        self.corrupted.add(job_id.encode())

    @precondition(lambda self: self.held and any(b"\xff" not in g for g in self.garbage))
    @rule(data=st.data(), outcome=st.sampled_from(list(Outcome)), first=st.booleans())
    def ack_beside_garbage(self, data: st.DataObject, outcome: Outcome, first: bool) -> None:
        """One ack call settles a good delivery and an entry whose job is garbage: the good
        one is settled as the model says, whatever the bad one does."""
        good_held = [h for h in self.held if h.id.encode() not in self.garbage]
        assume(good_held)
        held = data.draw(st.sampled_from(good_held))
        self.held.remove(held)
        bad = data.draw(st.sampled_from(sorted(g for g in self.garbage if b"\xff" not in g)))
        result = f'"{held.id}:{held.lease}"'.encode()
        want = self.model.ack(held.id, held.lease, outcome.value, result, False)
        good = settlement(outcome, result, False).ack_fields(held.id, held.lease)
        junk = Settlement.finished(b"1").ack_fields(bad.decode(), "1")
        items = [*good, *junk] if first else [*junk, *good]
        flags = self._call("ack", self.keys.script_keys, [self.keys.base, 2, *items])
        mine = flags[0 if first else 1]  # type: ignore[index]
        assert mine == want, f"ack of {held} beside garbage answered {flags}; model: {want}"
        if bad in self.corrupted:  # an ack naming a running job made garbage settles it
            self.corrupted.discard(bad)
            assert self._places(bad) == ["dead"], f"garbage {bad!r} in {self._places(bad)}"

    @rule(
        option=st.sampled_from(
            [
                ("result_ttl", 1.5),
                ("result_ttl", 10**17),
                ("result_ttl", 0),
                ("max_deliveries", 0),
                ("priority", True),
                ("timeout", 0),
                ("timeout", float("nan")),
                ("timeout", float("inf")),
            ]
        )
    )
    def enqueue_bad_value(self, option: tuple[str, object]) -> None:
        """A value the scripts cannot use is refused at enqueue, naming the field, and nothing
        is written."""
        name, value = option
        call = Call("m.task", (), queue=QUEUE, job_id="bad-value").set(**{name: value})
        try:
            self.q.enqueue_many([call])
        except (ValueError, TypeError) as exc:
            assert name in str(exc), f"the error does not name {name}: {exc}"
        else:
            raise AssertionError(f"enqueue accepted {name}={value!r}")
        assert not self.r.exists(self.keys.job("bad-value"))


SETTINGS = settings(
    max_examples=120,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# Shrinking a failure against a real Redis can take minutes: room for it to finish, so a
# failure ends with its smallest example rather than a timeout.
@pytest.mark.timeout(900)
def test_job_state_machine(redis_url: str) -> None:
    JobStates.url = redis_url
    run_state_machine_as_test(JobStates, settings=SETTINGS)


@pytest.mark.timeout(900)
def test_job_state_machine_with_garbage(redis_url: str) -> None:
    """Fails on main: a bad entry makes fetch.lua stop half-way or the reply
    cannot be parsed; fixed, it is dead-lettered and every other job proceeds."""
    GarbageJobStates.url = redis_url
    run_state_machine_as_test(GarbageJobStates, settings=SETTINGS)
