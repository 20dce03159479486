"""Jobs pinned to a worker version in the intersections machine: ``PinnedIntersections`` is
the machine of intersections.py with a third real worker, of version ``v1`` (it consumes each
queue after that queue's pinned queue ``<queue>~v1``), a producer of jobs pinned to v1 (by
``.set(version=...)`` or by ``pin_version=True`` in a process whose ``KUBEQ_VERSION`` is v1;
plain, limited by a key or rate limited; on a plain or a partitioned queue; short result
TTL; on_success / on_failure), that worker's own steps (fetch, heartbeat, hand-off, killed)
and the retirement of v1 (set and lifted), beside limits, TTLs, abort, cancel, purge,
workflows and the other two workers, which have no version.

After every step: a pinned job runs only on v1's worker; while v1 is retired its worker
takes no unpinned job (it finishes what it holds and still runs its pinned jobs); the pinned
queues' stats count what their jobs say. ``drain`` then proves every pinned job ran or ended,
retired or not. A pinned queue is a queue of its own (its own hash tag): a concurrency key,
a task's or a queue's rate limit and a purge of ``q`` do not reach the jobs pinned in
``q~v1`` (docs/scaling.md, Pinning), so the ledger files them under that queue.
"""

from __future__ import annotations

import os
import time

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

import kubeq
from kubeq.store.keys import QueueKeys, pin_of
from kubeq.store.versions import VERSION_ENV
from kubeq.worker.settings import WorkerSettings
from tests.model.fleet import LEASE_SECONDS, PARTITIONS, ModelWorker
from tests.model.intersections import CONSUMED, KEYS, QUEUES, SHORT_TTL, Intersections

VERSION = "v1"
V1 = "v1w"
"""The worker of version v1 (w1 and w2 have none)."""
PINNED = [f"q~{VERSION}", f"pq~{VERSION}#0", f"pq~{VERSION}#1"]


class PinnedIntersections(Intersections):
    def __init__(self) -> None:
        super().__init__()
        settings = WorkerSettings(
            tasks_module="model",
            queues=CONSUMED,
            concurrency=2,
            prefetch_ms=0,
            partitions=PARTITIONS,
            redis_url=self.url,
            lease_seconds=LEASE_SECONDS,
            handle_signals=False,
            worker_id=V1,
            version=VERSION,
        )
        self.fleet.workers[V1] = ModelWorker(settings, dict(self.app.tasks))
        self.retired = False
        self.held_by_v1: set[tuple[str, str, str]] = set()
        """(queue, id, lease) of v1's runs after the last step."""

    @rule(
        kind=st.sampled_from(["plain", "limited", "rated"]),
        queue=st.sampled_from(QUEUES),
        key=st.sampled_from(KEYS),
        by_env=st.booleans(),
        short_ttl=st.booleans(),
        on_success=st.sampled_from([None, *QUEUES]),
        on_failure=st.sampled_from([None, *QUEUES]),
    )
    def enqueue_pinned(
        self,
        kind: str,
        queue: str,
        key: str,
        by_env: bool,
        short_ttl: bool,
        on_success: str | None,
        on_failure: str | None,
    ) -> None:
        call = self.tasks[kind].s().set(queue=queue, job_id=self._id("v"))
        call = call.set(pin_version=True) if by_env else call.set(version=VERSION)
        if kind == "limited":
            call = call.set(limit_key=key)
        if short_ttl:
            call = call.set(result_ttl=SHORT_TTL)
        if on_success:
            call = call.set(on_success=self._callback(on_success))
        if on_failure:
            call = call.set(on_failure=self._callback(on_failure))
        before = os.environ.get(VERSION_ENV)
        os.environ[VERSION_ENV] = VERSION if by_env else "other"  # .set(version=) wins
        try:
            (job,) = self.app.enqueue_many([call])
        finally:
            if before is None:
                del os.environ[VERSION_ENV]
            else:
                os.environ[VERSION_ENV] = before
        assert job.queue in PINNED, f"a job pinned to {VERSION} went to {job.queue}"
        self.ledger.add(job.id, job.queue.partition("#")[0], call, job.queue)

    @rule()
    def fetch_v1(self) -> None:
        self.fetch(V1)

    @rule()
    def heartbeat_v1(self) -> None:
        self.heartbeat(V1)

    @rule()
    def hand_off_v1(self) -> None:
        self.fleet.hand_off(V1)

    @rule()
    def die_v1(self) -> None:
        self.die(V1)

    @rule(retire=st.booleans())
    def retire_v1(self, retire: bool) -> None:
        """The operator marks v1 retired (or current again); its worker reads it on its beat."""
        for name in CONSUMED:
            k = QueueKeys.of(name).retired
            if retire:
                self.r.hset(k, VERSION, int(time.time() * 1000))
            else:
                self.r.hdel(k, VERSION)
        self.fleet.run(self.fleet.workers[V1]._check_retired(VERSION))
        self.retired = retire

    @precondition(lambda self: self.retired)
    @rule(queue=st.sampled_from(QUEUES))
    def retired_v1_fetches(self, queue: str) -> None:
        """An unpinned job waits while v1 is retired: v1's fetch leaves it (the invariant)."""
        call = self.tasks["plain"].s().set(queue=queue, job_id=self._id("r"))
        (job,) = self.app.enqueue_many([call])
        self.ledger.add(job.id, queue, call, job.queue)
        self.fetch(V1)

    @invariant()
    def pinned_jobs_run_on_their_version(self) -> None:
        held = set()
        for name, d in self._runs():
            pin = pin_of(d.job.queue.name)
            assert pin is None or (pin, name) == (VERSION, V1), (
                f"job {d.id} pinned to {pin} runs on worker {name}"
            )
            if name != V1:
                continue
            run = (d.job.queue.name, d.id, d.job.lease)
            held.add(run)
            if self.retired and pin is None:
                assert run in self.held_by_v1, f"retired {VERSION} took unpinned job {d.id}"
        self.held_by_v1 = held

    @invariant()
    def pinned_queues_count_their_jobs(self) -> None:
        self.ledger.observe()
        self.ledger.check_stats(PINNED, kubeq.read_stats(self.r, PINNED))
