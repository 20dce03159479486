"""Durable steps, sleeps and waits in the intersections machine (mixed into
``Intersections``): a run records steps, sleeps or waits for a signal through the real client
code (``kubeq.step``, ``kubeq.sleep``, ``kubeq.wait_for`` under the run's own JobContext),
signals arrive (mode all or one), sleeps fall due; beside the machine's partitions, limits,
TTLs, abort, cancel, purge, workflows and lapsed or lost leases.

After every step: a step is recorded only by a run that holds its job's lease (a zombie gets
LeaseLost) and never changes once recorded; a recorded step is returned without running; a
sleeping job is in the sleeping index, in the delayed set exactly when it has a time, in no
ready, active or slot set, and among its signal key's waiters when it waits for one; every
member of the sleeping index is sleeping.
"""

from __future__ import annotations

import itertools
from typing import Any

import redis
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

import kubeq
from kubeq.client.context import JobContext, reset_current, set_current
from kubeq.errors import JobSuspended, LeaseLost, WaitTimeout
from kubeq.outcomes import Ended, Settlement
from kubeq.store.keys import QueueKeys
from kubeq.worker.delivery import Delivery
from tests.model.picks import pick

SIGNAL_KEYS = ["s1", "s2"]
PARTS = {"q": ["q"], "pq": ["pq#0", "pq#1"]}


class DurableRules:
    """Rules and invariants of durable execution; the machine provides the rest."""

    r: redis.Redis
    url: str
    app: kubeq.App
    fleet: Any
    ledger: Any

    def _runs(self) -> list[tuple[str, Delivery]]:
        raise NotImplementedError

    def _durable(self) -> dict[str, dict[str, Any]]:
        """Model: job id -> step name -> its record."""
        if not hasattr(self, "_steps"):
            self._steps: dict[str, dict[str, Any]] = {}
            self._values = itertools.count(1)
        return self._steps

    def _holds(self, d: Delivery) -> bool:
        status, lease, lapsed = (
            (v or b"").decode()
            for v in self.r.hmget(d.job.queue.job(d.id), "status", "lease", "lapsed")
        )
        token = d.job.lease
        return (status == "active" and lease == token) or (status == "queued" and lapsed == token)

    def _as(self, d: Delivery, fn: Any, *args: Any, **kwargs: Any) -> Any:
        ctx = JobContext(
            d.id,
            d.task_name,
            d.job.queue.name,
            d.job.attempts + 1,
            3,
            lease=d.job.lease,
            base=d.job.queue.base,
            redis_url=self.url,
        )
        token = set_current(ctx)
        try:
            return fn(*args, **kwargs)
        finally:
            reset_current(token)

    @rule(data=st.data(), name=st.sampled_from(["a", "b"]))
    def durable_step(self, data: st.DataObject, name: str) -> None:
        run = pick(data, self._runs())
        if run is None:
            return
        _, d = run
        steps = self._durable().setdefault(d.id, {})
        holds = self._holds(d)
        value = next(self._values)
        ran: list[int] = []

        def fn() -> int:
            ran.append(value)
            return value

        try:
            got = self._as(d, kubeq.step, name, fn)
        except LeaseLost:
            assert not holds, f"step {name} of {d.id} refused while its run holds the lease"
            assert name not in steps
            return
        if name in steps:
            assert got == steps[name] and not ran, f"step {name} of {d.id} ran again"
        else:
            assert holds, f"a zombie of {d.id} recorded step {name}"
            assert ran == [value] and got == value
            steps[name] = value

    @rule(
        data=st.data(),
        kind=st.sampled_from(["sleep", "wait"]),
        key=st.sampled_from(SIGNAL_KEYS),
        timed=st.booleans(),
    )
    def durable_suspend(self, data: st.DataObject, kind: str, key: str, timed: bool) -> None:
        run = pick(data, self._runs())
        if run is None:
            return
        name, d = run
        holds = self._holds(d)
        steps = self._durable().setdefault(d.id, {})
        try:
            if kind == "sleep":
                self._as(d, kubeq.sleep, 600 if timed else 0)
                step, record = "~sleep:1", None
            else:
                self._as(d, kubeq.wait_for, key, timeout=600 if timed else None)
                step, record = f"~wait:{key}", None
        except JobSuspended:
            assert holds, f"a zombie of {d.id} suspended it"
            assert self.r.hget(d.job.queue.job(d.id), "status") == b"sleeping"
            if kind == "sleep":
                steps["~sleep:1"] = {"until": self._until(d)}
            self.fleet.end_run(name, d, Settlement(Ended.SUSPENDED))
            return
        except LeaseLost:
            assert not holds, f"{d.id} refused to {kind} while its run holds the lease"
            return
        except WaitTimeout:
            step, record = f"~wait:{key}", {"timeout": True}
        # it did not suspend: recorded already, or a kept signal (or its timeout) answered
        stored = self.r.hget(d.job.queue.job(d.id), f"step:{step}")
        assert stored is not None, f"{d.id} passed {step} without a record"
        if step not in steps:
            assert holds, f"a zombie of {d.id} recorded {step}"
            steps[step] = kubeq.serialization.loads(stored)
        if record is not None:
            assert steps[step] == record

    def _until(self, d: Delivery) -> int:
        raw = self.r.hget(d.job.queue.job(d.id), "sleep_until")
        return int(raw or 0)

    @rule(
        queue=st.sampled_from(["q", "pq"]),
        key=st.sampled_from(SIGNAL_KEYS),
        one=st.booleans(),
    )
    def durable_signal(self, queue: str, key: str, one: bool) -> None:
        mode = "one" if one and queue == "q" else "all"
        waiting = {
            m.decode()
            for p in PARTS[queue]
            for m in self.r.zrange(QueueKeys.of(p).waiters(key), 0, -1)
        }
        payload = next(self._values) if hasattr(self, "_values") else 0
        woken = self.app.signal(key, payload, queue=queue, mode=mode)
        assert woken == (min(1, len(waiting)) if mode == "one" else len(waiting))
        for p in PARTS[queue]:
            for job_id in waiting:
                jk = QueueKeys.of(p).job(job_id)
                record = self.r.hget(jk, f"step:~wait:{key}")
                if record is not None and self.r.hget(jk, "status") == b"queued":
                    self._durable().setdefault(job_id, {})[f"~wait:{key}"] = {"signal": payload}

    @rule()
    def sleeps_fall_due(self) -> None:
        """Time passes: every timed sleep and wait falls due."""
        for part in itertools.chain(*PARTS.values()):
            k = QueueKeys.of(part)
            timed = [m for m, s in self.r.zrange(k.sleeping, 0, -1, withscores=True) if s < 8e15]
            if timed:
                self.r.zadd(k.sleeping, dict.fromkeys(timed, 0), xx=True)
                self.r.zadd(k.delayed, dict.fromkeys(timed, 0), xx=True)

    @invariant()
    def sleeping_jobs_are_where_they_say(self) -> None:
        for part in itertools.chain(*PARTS.values()):
            k = QueueKeys.of(part)
            index = {m.decode() for m in self.r.zrange(k.sleeping, 0, -1)}
            delayed = {m.decode() for m in self.r.zrange(k.delayed, 0, -1)}
            busy = {m.decode() for m in self.r.zrange(k.ready, 0, -1)} | {
                m.decode() for m in self.r.zrange(k.active, 0, -1)
            }
            slots = set()
            for key in self.r.scan_iter(match=f"{k.base}slots:*"):
                slots |= {m.decode() for m in self.r.smembers(key)}
            for job_id in index:
                status, until, signal = self.r.hmget(
                    k.job(job_id), "status", "sleep_until", "signal"
                )
                assert status == b"sleeping", f"{job_id} in the sleeping index is {status!r}"
                assert (job_id in delayed) == (until is not None), f"{job_id}: timer {until!r}"
                assert job_id not in busy and job_id not in slots, f"sleeping {job_id} holds"
                if signal is not None:
                    waiters = self.r.zrange(k.waiters(signal.decode()), 0, -1)
                    assert job_id.encode() in waiters, f"{job_id} not among its key's waiters"
            for job_id, steps in self._durable().items():
                jk = k.job(job_id)
                if not self.r.exists(jk):
                    continue
                stored = {
                    n.decode()[5:]: kubeq.serialization.loads(v)
                    for n, v in self.r.hscan_iter(jk, match="step:*")
                }
                assert stored == steps, f"steps of {job_id}: {stored}, model {steps}"
