"""Batches in the intersections machine: ``BatchIntersections`` is ``FlowIntersections``
with items of a batch task (per key, on a plain or a partitioned queue) among its steps, and
a batch's run settling its items through the worker's own code (``worker/batches.py``:
``read_items``, ``item_outcomes``, ``settle_items`` fenced by the batch's lease) before the
batch's ack. A batch's other ends come from the machine's own steps: a run ended by hand
(finished, failed, retried), abort, cancel, purge, a killed worker, a late heartbeat.

After every step: an item is ``batched`` only while its batch job is live (no item is
stranded, whatever ended its batch); a batch holds at most ``max_size`` items, each in one
batch only; an open batch key names a live batch job of that key.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from kubeq.options import Call
from kubeq.retry import RetryPolicy
from kubeq.store.keys import QueueKeys
from kubeq.worker import batches
from kubeq.worker.delivery import Delivery
from tests.model.fleet import BATCH
from tests.model.flowmodel import FlowIntersections
from tests.model.intersections import KEYS, QUEUES
from tests.model.ledger import LIVE
from tests.model.picks import pick

TASK = "model.flow_batch"
RETRY = RetryPolicy(max_attempts=2, backoff_min=0, backoff_max=0)
"""A failed item's own retry comes at once (the machine does not wait for backoffs)."""


class BatchIntersections(FlowIntersections):
    @rule(queue=st.sampled_from(QUEUES), key=st.sampled_from(KEYS))
    def batch_item(self, queue: str, key: str) -> None:
        call = self.tasks["flow_batch"].s([key, next(self.ids)]).set(queue=queue)
        (job,) = self.app.enqueue_many([call])
        assert job.created and job.status() == "batched"
        self.ledger.add(job.id, queue, call, job.queue)
        carrier = self.r.hget(QueueKeys.of(job.queue).job(job.id), "batch")
        assert carrier is not None
        # the batch job, a job of its own the workers fetch
        self.ledger.add(carrier.decode(), queue, Call(TASK), job.queue)

    def _batch_runs(self) -> list[tuple[str, Delivery]]:
        return [(n, d) for n, d in self._runs() if self.ledger.entries[d.id].call.task == TASK]

    @rule(data=st.data(), fail_odd=st.booleans())
    def batch_runs(self, data: st.DataObject, fail_odd: bool) -> None:
        """A batch's run as the worker's: its items settled (odd ones failed, retried on
        their own), then its ack."""
        run = pick(data, self._batch_runs())
        if run is None:
            return
        name, d = run
        run = batches.read_items(self.url, d.job.queue, d.id)
        if run.bad:  # as the worker: expired or malformed items settled before the task runs
            batches.settle_items(self.url, d.job.queue, d.id, d.job.lease, run.bad)
        answer = [ValueError("odd") if fail_odd and i[1] % 2 else i for i in run.items]
        fields, failed = batches.item_outcomes(run, answer, RETRY)
        batches.settle_items(self.url, d.job.queue, d.id, d.job.lease, fields)
        self.fleet.end_run(name, d, batches.summary(run, failed))

    @invariant()
    def items_live_only_with_their_batch(self) -> None:
        for e in list(self.ledger.entries.values()):
            if e.call.task != TASK or not e.call.args or not e.partition:
                continue
            keys = QueueKeys.of(e.partition)
            status, carrier = self.r.hmget(keys.job(e.id), "status", "batch")
            if status != b"batched":
                continue
            assert carrier is not None
            cstatus = self.r.hget(keys.job(carrier.decode()), "status")
            assert cstatus is not None and cstatus.decode() in LIVE, (
                f"item {e.id} is batched in {carrier!r}, which is {cstatus!r}"
            )
            members = self.r.lrange(keys.items(carrier.decode()), 0, -1)
            assert members.count(e.id.encode()) == 1, f"item {e.id} not once in its batch"
            assert len(members) <= BATCH.max_size, f"batch {carrier!r}: {len(members)} items"

    @invariant()
    def open_batches_are_live(self) -> None:
        for part in self.ledger.where("q") + self.ledger.where("pq"):
            keys = QueueKeys.of(part)
            for k in self.r.scan_iter(match=keys.batch("*"), count=1000):
                held = self.r.get(k)
                if held is None:
                    continue
                status = self.r.hget(keys.job(held.decode()), "status")
                assert status is not None and status.decode() in LIVE, (
                    f"{k!r} names the batch {held!r}, which is {status!r}"
                )
