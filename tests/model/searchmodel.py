"""Job search in the intersections machine: ``SearchIntersections`` is the machine of
intersections.py with one more step, a filter over a queue (every partition), and with some
jobs tagged, beside limits, short result TTLs, expiry, abort, cancel, purge, killed workers,
chains, chords and hand-offs.

Checked at each search: a filter with no condition finds exactly the jobs whose records live
in the queue's partitions (the task index of each task, merged: none missed, whatever ended
them or however they were made, and nothing whose record is gone), and a filter by tag finds
exactly the live ones that carry it.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import rule

from kubeq.store.keys import QueueKeys
from tests.model.intersections import QUEUES, SHORT_TTL, Intersections


class SearchIntersections(Intersections):
    def _live(self, queue: str) -> set[str]:
        """The ids of the job records that exist in ``queue``'s partitions (read by SCAN: the
        test's own truth, not the index under test)."""
        out = set()
        for part in self.ledger.where(queue):
            pattern = QueueKeys.of(part).job("*").replace("[", "\\[")
            for key in self.r.scan_iter(match=pattern, count=1000):
                out.add(key.decode().rsplit(":job:", 1)[1])
        return out

    @rule(queue=st.sampled_from(QUEUES), short_ttl=st.booleans())
    def enqueue_tagged(self, queue: str, short_ttl: bool) -> None:
        call = self.tasks["plain"].s().set(queue=queue, job_id=self._id("t"), tags=["marked"])
        if short_ttl:
            call = call.set(result_ttl=SHORT_TTL)
        (job,) = self.app.enqueue_many([call])
        self.ledger.add(job.id, queue, call, job.queue)

    @rule(queue=st.sampled_from(QUEUES))
    def search(self, queue: str) -> None:
        live = self._live(queue)
        found = self.app.queue(queue).find(limit=100_000)
        assert found.complete
        assert {j.id for j in found.jobs} == live, "find() disagrees with the job records"
        tagged = {j.id for j in self.app.queue(queue).find(tags=["marked"], limit=100_000).jobs}
        assert tagged == {i for i in live if i.startswith("t")}
