"""Batch items on their own in the intersections machine: ``BatchItemIntersections`` is
``BatchIntersections`` (batchmodel.py) with items given ``expires=``, a step in which the
expiry time of some waiting items passes (on the server's clock, as the machine makes time
pass: their ``expires_at`` moves into the past), and a step in which the batches fall due
and a worker runs those it fetches, aborting one item of a batch while it runs, and the
requeue of a dead-lettered item (it runs on its own). Each meets
the machine's other steps: limits, partitions, TTLs, purge, cancel, killed workers, batch
failures and retries.

Checked after every step: an item ends ``expired`` only once its expiry time passed; an item
whose time passed while its batch had not started never finishes (it expires, or ends with
its batch); an item aborted while its batch ran ends ``aborted`` at once and is never given
to a run of its batch after that.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from kubeq.options import Call
from kubeq.retry import RetryPolicy
from kubeq.store.keys import QueueKeys
from kubeq.worker import batches
from tests.model.batchmodel import RETRY, TASK, BatchIntersections
from tests.model.intersections import KEYS, QUEUES
from tests.model.picks import pick

ONCE = RetryPolicy(max_attempts=1)
"""A failed item goes to the dead letters at once."""


class BatchItemIntersections(BatchIntersections):
    expiring: set[str]
    """Items enqueued with an expiry time."""
    passed: set[str]
    """Items whose expiry time has passed."""
    must_expire: set[str]
    """Items whose time passed while their batch had not started."""
    aborted_in_run: set[str]
    """Items aborted while their batch ran."""

    def __init__(self) -> None:
        super().__init__()
        self.expiring = set()
        self.passed = set()
        self.must_expire = set()
        self.aborted_in_run = set()

    @rule(queue=st.sampled_from(QUEUES), key=st.sampled_from(KEYS))
    def batch_item_expiring(self, queue: str, key: str) -> None:
        """An item that must start within an hour (only ``item_expiry_passes`` makes that
        time pass)."""
        self._expiring_item(queue, key)

    def _expiring_item(self, queue: str, key: str) -> str:
        call = self.tasks["flow_batch"].s([key, next(self.ids)]).set(queue=queue, expires=3600)
        (job,) = self.app.enqueue_many([call])
        assert job.created and job.status() == "batched"
        self.ledger.add(job.id, queue, call, job.queue)
        carrier = self.r.hget(QueueKeys.of(job.queue).job(job.id), "batch")
        assert carrier is not None
        self.ledger.add(carrier.decode(), queue, Call(TASK), job.queue)
        self.expiring.add(job.id)
        return job.id

    def _batched(self, ids: set[str]) -> list[str]:
        """The items of ``ids`` still batched, in a stable order."""
        out = []
        for i in sorted(ids):
            e = self.ledger.entries[i]
            if e.partition and self.r.hget(QueueKeys.of(e.partition).job(i), "status") == (
                b"batched"
            ):
                out.append(i)
        return out

    @rule(data=st.data())
    def item_expiry_passes(self, data: st.DataObject) -> None:
        got = pick(data, self._batched(self.expiring))
        if got is None:
            return
        self._pass(got)

    def _pass(self, item: str) -> None:
        """The item's expiry time passes."""
        part = self.ledger.entries[item].partition
        assert part is not None
        keys = QueueKeys.of(part)
        carrier = self.r.hget(keys.job(item), "batch")
        assert carrier is not None
        status, deliveries, lapsed = self.r.hmget(
            keys.job(carrier.decode()), "status", "deliveries", "lapsed"
        )
        self.r.hset(keys.job(item), "expires_at", "1")  # long past, on any clock
        self.passed.add(item)
        if status in (b"scheduled", b"queued") and deliveries == b"0" and not lapsed:
            self.must_expire.add(item)

    @rule(
        worker=st.sampled_from(["w1", "w2"]),
        queue=st.sampled_from(QUEUES),
        key=st.sampled_from(KEYS),
        new=st.integers(0, 4),
        expire=st.booleans(),
        abort=st.booleans(),
        fail=st.sampled_from(["none", "retried", "dead", "dead, requeued"]),
    )
    def due_batches_run(
        self,
        worker: str,
        queue: str,
        key: str,
        new: int,
        expire: bool,
        abort: bool,
        fail: str,
    ) -> None:
        """``new`` items of ``key`` come (with ``expire``, expiring, and their time passes at
        once), every wait runs out, ``worker`` fetches, and each batch it got runs as the
        worker runs one: its items read (the expired settled first), then, with ``abort``,
        its first item aborted while the task runs, the task's answers settled (its last
        item failed unless ``fail`` is none: retried on its own, or dead-lettered at once,
        and maybe requeued), the batch acked."""
        for _ in range(new):
            if expire:
                self._pass(self._expiring_item(queue, key))
            else:
                self.batch_item(queue, key)
        self.windows_pass()
        self.fetch(worker)
        for name, d in self._batch_runs():
            if name != worker:
                continue
            run = batches.read_items(self.url, d.job.queue, d.id)
            for i in run.ids:
                assert i not in self.aborted_in_run, f"item {i} aborted, yet given to a run"
            if run.bad:
                batches.settle_items(self.url, d.job.queue, d.id, d.job.lease, run.bad)
            item = run.ids[0] if abort and run.ids else None
            if item is not None:
                assert self.app.job(item, d.job.queue.name).abort() is True
                self.ledger.entries[item].aborted = True
                self.aborted_in_run.add(item)
            answer: list[object] = list(run.items)
            if fail != "none" and answer:
                answer[-1] = ValueError("the last item fails")
            policy = RETRY if fail == "retried" else ONCE
            fields, n = batches.item_outcomes(run, answer, policy)
            batches.settle_items(self.url, d.job.queue, d.id, d.job.lease, fields)
            self.fleet.end_run(name, d, batches.summary(run, n))
            if item is not None:
                status = self.r.hget(d.job.queue.job(item), "status")
                assert status == b"aborted", f"item {item} aborted in its run, then {status!r}"
            if fail == "dead, requeued":
                self.ledger.observe()
                for i in run.ids:
                    if self.ledger.entries[i].status == "failed":
                        self._requeue_item(i)

    @rule(data=st.data())
    def requeue_a_dead_item(self, data: st.DataObject) -> None:
        """A dead-lettered item is requeued: it runs on its own (a batch of one), an
        ordinary job now, outside any batch."""
        dead = sorted(
            e.id
            for e in self.ledger.entries.values()
            if e.status == "failed" and e.call.task == TASK and e.call.args
        )
        item = pick(data, dead)
        if item is not None:
            self._requeue_item(item)

    def _requeue_item(self, item: str) -> None:
        e = self.ledger.entries[item]
        done = self.app.queue(e.queue).requeue([item])
        assert done.count == 1 and not done.refused, f"item {item}: {done}"
        assert e.partition is not None
        assert self.r.hget(QueueKeys.of(e.partition).job(item), "status") == b"queued"
        e.status, e.aborted = "queued", False
        e.revived += 1

    @invariant()
    def items_expire_only_past_their_time(self) -> None:
        self.ledger.observe()
        for e in self.ledger.entries.values():
            if "expired" in e.ends and e.call.task == TASK and e.call.args:
                assert e.id in self.passed, f"item {e.id} expired before its time"
            if e.id in self.must_expire:
                assert "finished" not in e.ends, f"item {e.id} ran after its expiry time"
            if e.id in self.aborted_in_run:
                assert e.ends[:1] == ["aborted"], f"item {e.id} aborted, then {e.ends}"
