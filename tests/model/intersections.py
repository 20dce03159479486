"""The intersections machine: partitions, concurrency and rate limits (a task's, a queue's),
result TTLs, abort, cancel, purge and the streamed bulk enqueue, beside callbacks, chains,
chords and ``depends_on``, through the public client and two real workers (fleet.py).

Steps: enqueue a job (plain, limited by a key, or rate limited; on a plain or a partitioned
queue; short result TTL; on_success / on_failure; or a task's plain ``delay()``), a chain, a
chord (or one whose callback is refused), a ``depends_on`` child, a bulk enqueue written as
it is laid out and finished later (replies read, or its connection lost and every batch
resent); a worker's pass, a run's end (finished, failed, retried now), heartbeat, hand-off,
sweep, a late heartbeat, a killed worker; abort, cancel, purge, a queue's rate limit; result
TTLs running out. Durable steps, sleeps, waits and signals join it in test_durable_model.py.

After every step (ledger.py): each job ended at most once, never came back or vanished while
live, never finished after its abort was acknowledged; a concurrency key never runs more
than its limit fleet-wide, a rate limit never starts more than its burst; ``read_stats``
counts what the jobs say; a heartbeat stops every aborted run; a chord's callback gets every
member's result. ``drain`` runs the fleet until nothing moves: nothing is then left to run
or deferred on parents that ended, and every follow-up of an ended parent is there once.
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import kubeq
from kubeq.client.enqueue import EnqueuePlan, created_flags
from kubeq.client.send import EnqueueStream
from kubeq.errors import JobNotFound
from kubeq.options import Call, RateLimit
from kubeq.outcomes import Settlement
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA
from kubeq.worker.delivery import Delivery
from kubeq.workflows.chords import chord_results
from tests.model import known
from tests.model.fixedids import FixedIds
from tests.model.fleet import OUTCOMES, PARTITIONS, RATE, Fleet, make_app
from tests.model.ledger import LIVE, Entry, Ledger
from tests.model.picks import pick, pick_some

QUEUES = ["q", "pq"]
CONSUMED = ["q", "pq#0", "pq#1"]
KEYS = ["a", "b"]
SHORT_TTL = 30
WAIT = ("queued", "scheduled", "sleeping")


class Intersections(RuleBasedStateMachine):
    url: str  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.fixed_ids = FixedIds()
        self.fixed_ids.install()
        self.r = redis.Redis.from_url(self.url)
        self.r.flushall()
        self.r.script_load(LUA["enqueue"].script)  # a stream's first batch finds it loaded
        self.app, self.tasks = make_app(self.url)
        self.fleet = Fleet(self.url, CONSUMED, PARTITIONS, self.app.tasks)
        self.ledger = Ledger(self.r, PARTITIONS)
        self.ids = itertools.count(1)
        self.bulk: tuple[EnqueueStream, EnqueuePlan] | None = None
        self.producer = ThreadPoolExecutor(1)
        """The bulk producer's thread (a streamed enqueue keeps that thread's connection)."""
        self.starts: dict[str, set[tuple[str, str]]] = {}
        """Starts (job, attempt) of the rate-limited task, and of a rate-limited queue, per
        partition."""

    def teardown(self) -> None:
        if self.bulk is not None:
            self.producer.submit(self.bulk[0].abandon).result()
        self.producer.shutdown()
        self.fleet.close()
        self.app.close()
        self.r.close()
        self.fixed_ids.restore()

    def _id(self, kind: str) -> str:
        return f"{kind}{next(self.ids)}"

    def _runs(self) -> list[tuple[str, Delivery]]:
        return [(name, d) for name, w in self.fleet.workers.items() for d in w.runs]

    def _callback(self, queue: str) -> Call:
        return self.tasks["plain"].s().set(queue=queue)

    # -- producers ----------------------------------------------------------------------------

    @rule(
        kind=st.sampled_from(["plain", "limited", "rated"]),
        queue=st.sampled_from(QUEUES),
        key=st.sampled_from(KEYS),
        short_ttl=st.booleans(),
        on_success=st.sampled_from([None, *QUEUES]),
        on_failure=st.sampled_from([None, *QUEUES]),
        plain=st.booleans(),
    )
    def enqueue(
        self,
        kind: str,
        queue: str,
        key: str,
        short_ttl: bool,
        on_success: str | None,
        on_failure: str | None,
        plain: bool = False,
    ) -> None:
        if plain:  # the task's own delay(): after its first, the short path (client.short)
            job = self.tasks[kind].delay()
            self.ledger.add(job.id, "q", self.tasks[kind].s(), job.queue)
            return
        call = self.tasks[kind].s().set(queue=queue, job_id=self._id("j"))
        if kind == "limited":
            call = call.set(limit_key=key)
        if short_ttl:
            call = call.set(result_ttl=SHORT_TTL)
        if on_success:
            call = call.set(on_success=self._callback(on_success))
        if on_failure:
            call = call.set(on_failure=self._callback(on_failure))
        (job,) = self.app.enqueue_many([call])
        self.ledger.add(job.id, queue, call, job.queue)

    @rule(queue=st.sampled_from(QUEUES), links=st.integers(2, 3), short_ttl=st.booleans())
    def chain(self, queue: str, links: int, short_ttl: bool) -> None:
        ttl = {"result_ttl": SHORT_TTL} if short_ttl else {}
        calls = [self.tasks["plain"].s(i).set(queue=queue, **ttl) for i in range(links)]
        first = kubeq.chain(*calls).signature().set(job_id=self._id("c"))
        (job,) = self.app.enqueue_many([first])
        self.ledger.add(job.id, queue, first, job.queue)

    @rule(queue=st.sampled_from(QUEUES), size=st.integers(1, 3), short_ttl=st.booleans())
    def chord(self, queue: str, size: int, short_ttl: bool) -> None:
        ttl = {"result_ttl": SHORT_TTL} if short_ttl else {}
        members = [self.tasks["plain"].s(i).set(queue=queue, **ttl) for i in range(size)]
        body = self._callback(queue)
        result = kubeq.chord(members, body).delay(self.app)
        ids = []
        for call, job in zip(members, result.group.jobs, strict=True):
            self.ledger.add(job.id, queue, call, job.queue)
            ids.append(job.id)
        cb = self.ledger.add(result.callback.id, queue, body, result.callback.queue)
        cb.parents = ids
        cb.chord_of = [[job.queue, job.id] for job in result.group.jobs]

    @rule(queue=st.sampled_from(QUEUES), size=st.integers(1, 2))
    def chord_refused(self, queue: str, size: int) -> None:
        """A chord whose callback cannot be enqueued (NaN is not JSON): nothing is."""
        members = [self.tasks["plain"].s(i).set(queue=queue) for i in range(size)]
        before = self._ready()
        try:
            kubeq.chord(members, self.tasks["plain"].s(float("nan"))).delay(self.app)
        except (ValueError, TypeError):
            pass
        else:
            raise AssertionError("a chord callback with a NaN argument was enqueued")
        left = {i: p for i, p in self._ready().items() if i not in before}
        assert known.KNOWN_ITEM_10 or not left, f"a refused chord left {sorted(left)} enqueued"
        for job_id, partition in left.items():
            self.ledger.add(job_id, queue, members[0], partition)

    def _ready(self) -> dict[str, str]:
        return {
            m.decode(): name
            for name in CONSUMED
            for m in self.r.zrange(QueueKeys.of(name).ready, 0, -1)
        }

    @rule(data=st.data(), queue=st.sampled_from(QUEUES), allow_failure=st.booleans())
    def child(self, data: st.DataObject, queue: str, allow_failure: bool) -> None:
        known_ids = sorted(e.id for e in self.ledger.entries.values() if e.partition)
        parents = pick_some(data, known_ids, 3)
        if not parents:
            return
        handles = [self.app.job(p, self.ledger.entries[p].partition) for p in parents]
        call = (
            self.tasks["plain"]
            .s()
            .set(queue=queue, job_id=self._id("d"), depends_on=handles, allow_failure=allow_failure)
        )
        try:
            (job,) = self.app.enqueue_many([call])
        except JobNotFound:  # a parent whose result expired, or purged: refused, nothing sent
            return
        self.ledger.add(job.id, queue, call, job.queue).parents = list(dict.fromkeys(parents))

    @precondition(lambda self: self.bulk is None)
    @rule(queue=st.sampled_from(QUEUES), size=st.integers(3, 5))
    def bulk_begin(self, queue: str, size: int) -> None:
        """Another producer's bulk enqueue of several batches, written as it is laid out,
        its replies not read yet (the producer's own thread: its kept connection)."""
        calls = [self.tasks["plain"].s(i).set(queue=queue) for i in range(size)]

        def lay_out() -> tuple[EnqueueStream, Any]:
            stream = EnqueueStream(self.app.redis, self.app.prefix, None)
            return stream, self.app._plan(calls, None, sink=stream)

        stream, plan = self.producer.submit(lay_out).result()
        assert len(plan.calls) > 1, "a bulk enqueue of one batch is not streamed"
        for call, q, job_id in zip(calls, plan.job_queues, plan.job_ids, strict=True):
            self.ledger.add(job_id, queue, call, q)
        self.bulk = (stream, plan)
        if stream.stream.conn is None:  # no kept connection: it is all sent at finish
            return
        deadline = time.monotonic() + 30  # written, not read: wait until Redis ran them
        places = list(zip(plan.job_queues, plan.job_ids, strict=True))
        while not all(self.r.exists(QueueKeys.of(q).job(i)) for q, i in places):
            assert time.monotonic() < deadline, "the streamed batches never ran"
            time.sleep(0.001)

    @precondition(lambda self: self.bulk is not None)
    @rule(lost=st.booleans())
    def bulk_finish(self, lost: bool) -> None:
        """Its replies are read; or its connection is lost first and every batch is resent."""
        assert self.bulk is not None
        (stream, plan), self.bulk = self.bulk, None
        if lost and stream.stream.conn is not None:
            stream.stream.conn.disconnect()
            for job_id in plan.job_ids:
                self.ledger.entries[job_id].resent += 1
        made = created_flags(plan, self.producer.submit(stream.finish, plan).result())
        assert all(made), f"a resent bulk call did not say it created its new jobs: {made}"

    # -- workers ------------------------------------------------------------------------------

    @rule(worker=st.sampled_from(["w1", "w2"]), woken=st.booleans())
    def fetch(self, worker: str, woken: bool = False) -> None:
        for d in self.fleet.fetch(worker, woken):
            e = self.ledger.entries[d.id]
            q = d.job.queue
            if e.chord_of is not None:  # what its worker passes it (run_attempt)
                got = chord_results(self.url, q.prefix, e.chord_of, q.job(d.id))
                self.ledger.check_chord_results(e, got)
            # a start is a job's attempt: a lapsed job delivered again keeps the start it had
            start = (d.id, str(d.job.attempts))
            if e.call.task == "model.rated":
                self.starts.setdefault(q.name, set()).add(start)
            if e.queue in self.ledger.held_back:
                self.starts.setdefault(f"queue {q.name}", set()).add(start)

    @precondition(lambda self: not self.ledger.held_back)
    @rule(queue=st.sampled_from(QUEUES))
    def limit_queue(self, queue: str) -> None:
        """The queue's own rate limit (each partition's): from now on, its burst at most."""
        self.app.queue(queue).set_rate_limit(RATE)
        self.ledger.held_back.add(queue)

    @rule(data=st.data(), outcome=st.sampled_from(sorted(OUTCOMES)), hot=st.booleans())
    def end_run(self, data: st.DataObject, outcome: str, hot: bool = False) -> None:
        run = pick(data, self._runs())
        if run is None:
            return
        name, d = run
        if self.fleet.end_run(name, d, OUTCOMES[outcome], hot):
            # its hot wait's fetch ran after the run ended: before the worker idles, the busy
            # count the operator scales on is what the worker holds
            w = self.fleet.workers[name]
            busy = [self.r.hget(q.busy, w.settings.worker_id) for q in w.queues]
            assert busy == [str(len(w.inflight)).encode()] * len(busy), busy

    @rule(worker=st.sampled_from(["w1", "w2"]))
    def heartbeat(self, worker: str) -> None:
        self.fleet.heartbeat(worker)
        for d in self.fleet.workers[worker].runs:
            e = self.ledger.entries[d.id]
            if e.aborted and not (known.KNOWN_ITEM_9 and e.expired and d.lost):
                raise AssertionError(f"job {d.id} was aborted, its heartbeat did not stop it")

    @rule(worker=st.sampled_from(["w1", "w2"]))
    def hand_off(self, worker: str) -> None:
        self.fleet.hand_off(worker)

    @rule(worker=st.sampled_from(["w1", "w2"]))
    def sweep(self, worker: str) -> None:
        """The grace period passes: the sweep redoes every hand-off still noted."""
        for name in CONSUMED:
            keys = QueueKeys.of(name)
            entries = self.r.zrange(keys.handoff, 0, -1)
            if entries:
                self.r.zadd(keys.handoff, dict.fromkeys(entries, 0), xx=True)
        self.fleet.sweep(worker)

    @rule(data=st.data())
    def late_heartbeat(self, data: st.DataObject) -> None:
        run = pick(data, self._runs())
        if run is not None:
            self.r.zadd(run[1].job.queue.active, {run[1].id: 0}, xx=True)

    @rule(worker=st.sampled_from(["w1", "w2"]))
    def die(self, worker: str) -> None:
        """SIGKILL: its runs stop, its leases run out, its pending hand-offs are not done."""
        for d in self.fleet.die(worker):
            self.r.zadd(d.job.queue.active, {d.id: 0}, xx=True)

    # -- operators ----------------------------------------------------------------------------

    def _pick(self, data: st.DataObject, statuses: frozenset[str]) -> Entry | None:
        choices = sorted(e.id for e in self.ledger.entries.values() if e.status in statuses)
        job_id = pick(data, choices)
        return None if job_id is None else self.ledger.entries[job_id]

    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        e = self._pick(data, LIVE)
        if e is not None and self.app.job(e.id, e.partition).abort():
            e.aborted = True

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        e = self._pick(data, LIVE)
        if e is not None:
            self.app.job(e.id, e.partition).cancel()

    @rule(queue=st.sampled_from(QUEUES))
    def purge(self, queue: str) -> None:
        waiting = [e for e in self.ledger.entries.values() if e.queue == queue and e.status in WAIT]
        for e in waiting:
            e.purged = True
        assert self.app.queue(queue).purge() == len(waiting)

    @rule()
    def results_expire(self) -> None:
        """SHORT_TTL seconds pass for results: every job key and done list whose TTL is
        that short expires (leases and other keys keep their time)."""
        gone = []
        for key in self.r.scan_iter(match="*job:*", count=1000):
            if 0 < self.r.pttl(key) <= SHORT_TTL * 1000:
                gone.append(key)
        for key in self.r.scan_iter(match="*done:*", count=1000):
            if 0 < self.r.pttl(key) <= SHORT_TTL * 1000:
                self.r.pexpire(key, 1)
        for key in gone:
            self.r.pexpire(key, 1)
            self.ledger.entries[key.decode().rsplit("job:", 1)[1]].expired = True
        deadline = time.monotonic() + 30
        while any(self.r.exists(k) for k in gone):
            assert time.monotonic() < deadline, "keys with 1 ms left never expired"
            time.sleep(0.002)

    @rule()
    def drain(self) -> None:
        """The fleet runs until nothing moves: every run finishes, every hand-off is done,
        every lease nobody renews runs out; then nothing may be left behind."""
        for _ in range(40):
            before = self.ledger.snapshot()
            held = {(d.job.queue.name, d.id) for _, d in self._runs()}
            for name in CONSUMED:
                keys = QueueKeys.of(name)
                orphans = [
                    m for m in self.r.zrange(keys.active, 0, -1) if (name, m.decode()) not in held
                ]
                if orphans:
                    self.r.zadd(keys.active, dict.fromkeys(orphans, 0), xx=True)
            for name in self.fleet.workers:
                self.heartbeat(name)
                self.fleet.hand_off(name)
                self.sweep(name)
                self.fetch(name)
            for name, d in self._runs():
                self.fleet.end_run(name, d, Settlement.finished(b"1"))
            self.ledger.observe()
            if self.ledger.snapshot() == before and not self._runs():
                break
        self.ledger.check_settled()

    # -- after every step ---------------------------------------------------------------------

    @invariant()
    def jobs_move_as_jobs_may(self) -> None:
        self.ledger.observe()
        self.ledger.check_ends()
        self.ledger.check_stats(CONSUMED, kubeq.read_stats(self.r, CONSUMED))

    @invariant()
    def limits_hold_fleet_wide(self) -> None:
        running: dict[tuple[str, str], set[str]] = {}
        for _, d in self._runs():
            e = self.ledger.entries[d.id]
            if e.call.limit_key is None:
                continue
            # a run counts while its lease is its own (current, or lapsed under its token);
            # one whose job was delivered again is fenced, and its next heartbeat stops it
            held = self.r.hmget(d.job.queue.job(d.id), "lease", "lapsed")
            if d.job.lease.encode() not in held:
                continue
            running.setdefault((e.queue, e.call.limit_key), set()).add(d.id)
        for key, ids in running.items():
            assert len(ids) <= 1, f"concurrency_limit=1 of {key}: {sorted(ids)} run at once"
        burst = RateLimit.parse(RATE).burst
        for queue, starts in self.starts.items():
            assert len(starts) <= burst, f"rate {RATE} on {queue}: {len(starts)} starts"
