"""Debounced and singleton calls in the intersections machine: ``FlowIntersections`` is the
machine of intersections.py with one more producer (a call of a debounced or singleton task,
on a plain or a partitioned queue, with a short result TTL or an on_success) and the flow
patterns' promises checked after every step, beside limits, TTLs, abort, cancel, purge,
killed workers and workflows.

Checked at each call: it joins the key's job exactly when that job has not started (skip:
when it is live), and cancel_running aborts a running one. A dead letter of a key, requeued,
takes its key back exactly when no newer job of the key holds it and wins by the mode's rule
(one waiting to run; one running under skip or cancel_running); else it is refused.

After every step: a key in Redis names a live job of that key (no key outlives its job,
whatever ended it); at most one job of a key waits unstarted (skip: at most one is live);
keep_latest and cancel_running never run two jobs of a key at once (an aborted run counts
until it stopped).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from kubeq.outcomes import Settlement
from kubeq.store.keys import QueueKeys
from tests.model.fleet import FLOW_MODES
from tests.model.intersections import KEYS, QUEUES, SHORT_TTL, Intersections
from tests.model.ledger import LIVE, Entry

SLOTTED = ("keep_latest", "cancel_running")


class FlowIntersections(Intersections):
    def _holder(self, queue: str, name: str) -> tuple[str, str, list[bytes | None]] | None:
        """(partition, id, [status, deliveries, lapsed]) of the job a key names, if any."""
        for part in self.ledger.where(queue):
            keys = self._keys(part)
            held = self.r.get(keys.flow(name))
            if held is not None:
                fields = self.r.hmget(keys.job(held.decode()), "status", "deliveries", "lapsed")
                return part, held.decode(), fields
        return None

    def _keys(self, part: str) -> QueueKeys:
        return QueueKeys.of(part)

    @rule(
        mode=st.sampled_from(list(FLOW_MODES)),
        queue=st.sampled_from(QUEUES),
        key=st.sampled_from(KEYS),
        short_ttl=st.booleans(),
        on_success=st.sampled_from([None, *QUEUES]),
    )
    def flow_call(
        self, mode: str, queue: str, key: str, short_ttl: bool, on_success: str | None
    ) -> None:
        task = self.tasks[f"flow_{mode}"]
        name = f"{task.name}:{key}"
        call = task.s(key, next(self.ids)).set(queue=queue)
        if short_ttl:
            call = call.set(result_ttl=SHORT_TTL)
        if on_success:
            call = call.set(on_success=self._callback(on_success))
        before = self._holder(queue, name)
        (job,) = self.app.enqueue_many([call])
        e = self.ledger.add(job.id, queue, call, job.queue)
        if before is None:
            assert job.created, f"{mode} {name}: no job held the key, yet {job.id} was joined"
        else:
            part, held, (status, deliveries, lapsed) = before
            st_ = (status or b"").decode()
            live = st_ in LIVE
            unstarted = live and st_ != "active" and not lapsed and deliveries == b"0"
            joins = live if mode == "skip" else unstarted
            if joins:
                assert (job.id, job.created) == (held, False), f"{mode} {name}: did not join"
            else:
                assert job.created and job.id != held, f"{mode} {name}: joined {st_} {held}"
                if mode == "cancel_running" and live:
                    assert self.r.hget(self._keys(part).job(held), "status") == b"aborted"
                    self.ledger.entries[held].aborted = True
        assert self.r.get(self._keys(job.queue).flow(name)) == job.id.encode()
        e.partition = job.queue

    def _flow_runs(self) -> list[tuple[str, Any]]:
        return [
            (n, d)
            for n, d in self._runs()
            if self.ledger.entries[d.id].call.task.startswith("model.flow_")
            and self.ledger.entries[d.id].call.task != "model.flow_batch"
        ]

    @precondition(lambda self: self._flow_runs())
    @rule(
        data=st.data(),
        then=st.sampled_from(["nothing", "requeue", "call, requeue", "call, fetch, requeue"]),
    )
    def flow_run_fails(self, data: st.DataObject, then: str) -> None:
        """A run of a debounced or singleton job fails for good: a dead letter, which may be
        requeued at once, or after a newer call of its key (waiting, or fetched)."""
        name, d = data.draw(st.sampled_from(self._flow_runs()))
        self.fleet.end_run(name, d, Settlement.failed("boom", "failed by the model"))
        self.ledger.observe()
        e = self.ledger.entries[d.id]
        if "call" in then:
            mode = e.call.task.removeprefix("model.flow_")
            self.flow_call(mode, e.queue, e.call.args[0], False, None)
        if "fetch" in then:
            self.fetch(name)
        if "requeue" in then and e.status == "failed":
            self._requeue(e)

    def _flow_dead(self) -> list[str]:
        return sorted(
            e.id
            for e in self.ledger.entries.values()
            if e.status == "failed" and e.call.task.startswith("model.flow_") and e.call.args
            if e.call.task != "model.flow_batch"
        )

    @precondition(lambda self: self._flow_dead())
    @rule(data=st.data())
    def requeue_flow_dead_letter(self, data: st.DataObject) -> None:
        self._requeue(self.ledger.entries[data.draw(st.sampled_from(self._flow_dead()))])

    def _requeue(self, e: Entry) -> None:
        """Requeue a dead letter of a key: it takes its key back unless a newer live job of
        the key holds it and wins (one not started; one running under skip, cancel_running)."""
        mode = e.call.task.removeprefix("model.flow_")
        name = f"{e.call.task}:{e.call.args[0]}"
        before = self._holder(e.queue, name)
        wins = False
        if before is not None:
            status, deliveries, lapsed = before[2]
            st_ = (status or b"").decode()
            unstarted = st_ != "active" and not lapsed and deliveries == b"0"
            wins = st_ in LIVE and (unstarted or mode in ("skip", "cancel_running"))
        done = self.app.queue(e.queue).requeue([e.id])
        if wins:
            assert done.count == 0 and e.id in done.refused, f"{mode} {name}: not refused"
            return
        assert done.count == 1 and not done.refused, f"{mode} {name}: {done}"
        assert e.partition is not None
        assert self.r.get(self._keys(e.partition).flow(name)) == e.id.encode()
        e.status, e.aborted = "queued", False
        e.revived += 1

    @rule()
    def windows_pass(self) -> None:
        """The debounce windows and batch waits run out: every debounced job and open batch
        falls due (they are long, so that only this step makes them pass)."""
        for part in self.ledger.where("q") + self.ledger.where("pq"):
            keys = self._keys(part)
            due = []
            for m in self.r.zrange(keys.delayed, 0, -1):
                mode, batch = self.r.hmget(keys.job(m.decode()), "flow_mode", "batch_key")
                if mode == b"debounce" or batch is not None:
                    due.append(m)
            if due:
                self.r.zadd(keys.delayed, dict.fromkeys(due, 0), xx=True)

    @rule()
    def drain(self) -> None:
        """As the machine's drain, once every window has passed."""
        self.windows_pass()
        super().drain()

    def _flow_entries(self) -> dict[tuple[str, str], list[Entry]]:
        by_key: dict[tuple[str, str], list[Entry]] = {}
        for e in self.ledger.entries.values():
            if e.call.task == "model.flow_batch":
                continue  # batches: batchmodel.py
            if e.call.task.startswith("model.flow_") and e.partition and e.status in LIVE:
                key = (e.partition, f"{e.call.task}:{e.call.args[0]}")
                by_key.setdefault(key, []).append(e)
        return by_key

    @invariant()
    def flow_keys_name_live_jobs(self) -> None:
        for part in self.ledger.where("q") + self.ledger.where("pq"):
            keys = self._keys(part)
            for k in self.r.scan_iter(match=keys.flow("*"), count=1000):
                held = self.r.get(k)
                if held is None:
                    continue
                status = self.r.hget(keys.job(held.decode()), "status")
                assert status is not None and status.decode() in LIVE, (
                    f"{k!r} outlived its job {held!r} ({status!r})"
                )

    @invariant()
    def one_waiting_job_per_key(self) -> None:
        for (part, name), entries in self._flow_entries().items():
            mode = entries[0].call.task.removeprefix("model.flow_")
            if mode == "skip":
                assert len(entries) <= 1, f"skip {name}: {[e.id for e in entries]} live"
                continue
            waiting = []
            for e in entries:
                f = self.r.hmget(self._keys(part).job(e.id), "status", "deliveries", "lapsed")
                if f[0] != b"active" and not f[2] and f[1] == b"0":
                    waiting.append(e.id)
            assert len(waiting) <= 1, f"{mode} {name}: {waiting} wait unstarted"

    @invariant()
    def one_run_per_slotted_key(self) -> None:
        running: dict[tuple[str, str], set[str]] = {}
        for _, d in self._runs():
            e = self.ledger.entries[d.id]
            mode = e.call.task.removeprefix("model.flow_")
            if mode not in SLOTTED:
                continue
            held = self.r.hmget(d.job.queue.job(d.id), "lease", "lapsed")
            if d.job.lease.encode() not in held:
                continue  # delivered again: fenced, its heartbeat stops it
            running.setdefault((d.job.queue.name, f"{mode}:{e.call.args[0]}"), set()).add(d.id)
        for key, ids in running.items():
            assert len(ids) <= 1, f"{key}: {sorted(ids)} run at once"
