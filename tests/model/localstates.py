"""The local states machine: where a job waits inside one real worker, and what Redis says
of it meanwhile. test_local_states.py runs it.

A job a worker has leased is, in Redis, ``active`` under its lease; inside the worker it is
in one of four places: held from the fetch's reply until the loop's next turn places it
(``_fresh``), leased ahead of a free slot (``_prefetch``), handed to the thread lane before a
slot was free (parked there), or running in a lane thread (a direct run: no asyncio task).
The machine drives ``kubeq.worker.loop.Worker`` itself, on the test's redis-server. Its
seams: the fetch's placement waits for the machine's ``place`` step, so every step can fall
between a reply and its placement; the prefetch's room is fixed and ``defaults.LANE_AHEAD``
set to 1 by the test, so that one fetch fills every place (localworker.py). The task is real
code in real lane threads; each run blocks on a gate that the machine's ``finish`` step
opens.

Steps: enqueue, a fetch (acknowledgements and a refill in one round trip), placing what it
brought, a run's end, a round trip of acknowledgements alone, a heartbeat (or one after
the slots turned out slow: what waits for a slot goes back), an abort (the heartbeat that
tells the worker comes in the same step), the lease taken by another delivery (``lost``:
the same), the SIGTERM drain with no time left (every held job goes back), and a new
worker in the drained one's place.

After every step: each job the worker holds is in exactly one of its places and is
``active`` in Redis under the worker's lease (``aborted`` once its abort reached the
worker); no delivery begins once the worker knows it was aborted, lost or handed back, and
none begins twice; what the drain hands back is ``queued`` and counts no attempt; nothing
is lost: every job is in a state Redis knows, and one whose run returned and whose outcome
was sent is ``finished``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import redis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import kubeq
from kubeq.store.keys import QueueKeys
from kubeq.worker.delivery import Delivery
from kubeq.worker.settings import WorkerSettings
from tests.model.localworker import CONCURRENCY, FixedPrefetch, Gates, LocalWorker
from tests.model.picks import pick

QUEUE = "lq"
SETTLE_SECONDS = 10.0


class LocalStates(RuleBasedStateMachine):
    url: str  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.r = redis.Redis.from_url(self.url)
        self.r.flushall()
        self.gates = Gates()
        self.app = kubeq.App(self.url)
        gates = self.gates

        @self.app.task(queue=QUEUE, name="model.local")
        def local(job: str) -> str:
            return gates.run(job)

        self.task = local
        self.q = self.app.queue(QUEUE)
        self.keys = QueueKeys.of(QUEUE)
        self.loop = asyncio.new_event_loop()
        self.workers = itertools.count(1)
        self.w = self._new_worker()
        self.ids = itertools.count(1)
        self.jobs: list[str] = []
        self.stopped_at: dict[tuple[str, str], int] = {}
        """Deliveries (job, lease) that must not begin from then on (the clock then): lost,
        or handed back, once the worker knows it; (job, "*") for an aborted job."""
        self.finishing: set[str] = set()
        """Jobs whose run returned as their worker's delivery: finished once it is sent."""
        self.done: set[str] = set()
        """Jobs whose run returned and whose outcome the worker has sent."""
        self.stopped = False

    def _new_worker(self) -> LocalWorker:
        settings = WorkerSettings(
            tasks_module="model",
            queues=[QUEUE],
            concurrency=CONCURRENCY,
            redis_url=self.url,
            drain_timeout=0.0,
            handle_signals=False,
            worker_id=f"local-{next(self.workers)}",
        )
        w = LocalWorker(settings, dict(self.app.tasks))
        w._prefetch = FixedPrefetch()
        w.gates = self.gates
        return w

    def _end_worker(self) -> None:
        """The worker's process is gone: its threads with it (their runs return nowhere)."""
        self.w.executor.shutdown()  # what is parked in its lane never begins
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            with self.gates.lock:  # a returning thread may begin a parked run: that one too
                blocked = list(self.gates.blocked)
            for key in blocked:
                self.gates.open(key)
            with self.gates.lock:  # every run let go has reached the old loop's code
                back = not self.gates.passing
            if (not blocked and back) or time.monotonic() > deadline:
                break
            self._run(asyncio.sleep(0.001))
        self._run(self.w._redis.aclose())

    def teardown(self) -> None:
        self._end_worker()
        self.loop.close()
        self.app.close()
        self.r.close()

    # -- helpers ----------------------------------------------------------------------

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _held(self) -> list[Delivery]:
        return [d for d in self.w.inflight.values() if not d.settled]

    def _settle(self) -> None:
        """Let the loop and the lane threads come to rest: every thread of the lane that is
        not idle waits at a gate, no run waits to be taken, and the loop has run what the
        threads handed back."""
        lane = self.w.executor._threads
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            self._run(asyncio.sleep(0.001))
            with lane._lock, self.gates.lock:
                # a run put on the queue waits for a thread only while none is idle (every
                # thread the lane may have runs, or was abandoned, at a gate)
                moving = lane._threads - lane._idle != len(self.gates.blocked) or (
                    lane._unclaimed and lane._idle
                )
                # a run let go from its gate may not have woken yet, and its thread counts
                # itself idle before the run reaches the loop
                moving = moving or bool(self.gates.passing)
            if not moving and not lane._back and not lane._signalled:
                return
            assert time.monotonic() < deadline, "the worker's lane did not come to rest"

    def _tick(self) -> int:
        with self.gates.lock:
            self.gates.clock += 1
            return self.gates.clock

    # -- steps ------------------------------------------------------------------------

    @precondition(lambda self: not self.stopped)
    @rule(n=st.integers(1, 4))
    def enqueue(self, n: int) -> None:
        made = [f"L{next(self.ids)}" for _ in range(n)]
        self.app.enqueue_many([self.task.s(j).set(job_id=j) for j in made])
        self.jobs += made

    @precondition(lambda self: not self.stopped)
    @rule(place=st.booleans())
    def fetch(self, place: bool) -> None:
        """A round trip: the outcomes so far and a refill; ``place``: the loop's next turn
        places what it brought in the same step (else a later ``place`` step does)."""
        self._run(self.w._round_trip(fetch=True))
        self._note_sent()
        if place:
            self._place()
        self._settle()

    @precondition(lambda self: not self.stopped)
    @rule()
    def place(self) -> None:
        """The loop's next turn: what the last fetches brought is placed."""
        self._place()
        self._settle()

    def _place(self) -> None:
        async def turn() -> None:
            self.w.placing = True
            try:
                self.w._place_fresh()
            finally:
                self.w.placing = False

        self._run(turn())

    @precondition(lambda self: not self.stopped)
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        """A run returns (an abandoned one too: its thread ends)."""
        with self.gates.lock:
            blocked = sorted(self.gates.blocked)
        key = pick(data, blocked)
        if key is None:
            return
        job, lease = key
        d = self.w.inflight.get((QUEUE, job))
        live = d is not None and d.job.lease == lease and not d.aborted
        self.gates.open(key)
        self._settle()
        if live:
            self.finishing.add(job)

    @precondition(lambda self: not self.stopped)
    @rule()
    def send(self) -> None:
        """A round trip of the outcomes alone (a worker with no free slot)."""
        self._run(self.w._round_trip(fetch=False))
        self._note_sent()
        self._settle()

    @precondition(lambda self: not self.stopped)
    @rule(slow=st.booleans())
    def heartbeat(self, slow: bool) -> None:
        """The heartbeat; ``slow``: the last run took so long that what waits for a slot
        goes back to the queue for other workers (prefetch.py)."""
        self.w._prefetch.last_slow = slow
        held = self._held()
        self._run(self.w._heartbeat())
        self._stop_handed_back(held)
        self._settle()

    @precondition(lambda self: not self.stopped and self.jobs)
    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        held = sorted(d.id for d in self._held())
        among_held = data.draw(st.booleans())  # drawn either way (picks.py)
        job = pick(data, held if held and among_held else self.jobs)
        assert job is not None
        self.q.job(job).abort()
        self._run(self.w._heartbeat())
        if self._is(job, "aborted"):
            self.stopped_at.setdefault((job, "*"), self._tick())
            self.finishing.discard(job)  # its outcome, if not sent yet, is refused
        self._settle()

    @precondition(lambda self: not self.stopped)
    @rule(data=st.data())
    def lost(self, data: st.DataObject) -> None:
        """Another delivery took the job over (its lease token is no longer this one's)."""
        d = pick(data, sorted(self._held(), key=lambda d: d.id))
        if d is None:
            return
        self.r.hset(self.keys.job(d.id), "lease", "999999999")
        self._run(self.w._heartbeat())
        self.stopped_at.setdefault((d.id, d.job.lease), self._tick())
        self._settle()

    @precondition(lambda self: not self.stopped)
    @rule()
    def stop(self) -> None:
        """SIGTERM with no drain time left: everything held goes back."""
        held = {d.id: d for d in self._held()}
        self.w.request_stop()
        self._run(self.w._drain())
        self.stopped = True
        self._note_sent()
        self._stop_handed_back(list(held.values()))
        for job, d in held.items():
            if d.aborted or (job, "*") in self.stopped_at:
                continue
            status, attempts = self.r.hmget(self.keys.job(job), "status", "attempts")
            assert status == b"queued", (job, status)
            # handed back, begun or not: no attempt counted
            assert int(attempts or 0) == d.job.attempts, (job, attempts, d.job.attempts)
        assert not self.w.inflight and not self.w._acks

    @precondition(lambda self: self.stopped)
    @rule()
    def restart(self) -> None:
        """The drained worker's process exits; a new one (its pod's replacement) starts."""
        self._end_worker()
        self.w = self._new_worker()
        self.stopped = False

    def _stop_handed_back(self, held: list[Delivery]) -> None:
        """Of the deliveries held before a step, those it handed back must never begin."""
        back = [d for d in held if d.handed_back]
        if back:
            clock = self._tick()
            for d in back:
                self.stopped_at.setdefault((d.id, d.job.lease), clock)

    def _note_sent(self) -> None:
        """The runs that returned whose outcomes are no longer waiting to be sent."""
        waiting = {d.id for d, _ in self.w._acks}
        sent = {job for job in self.finishing if job not in waiting}
        self.finishing -= sent
        self.done |= sent

    def _is(self, job: str, status: str) -> bool:
        return self.r.hget(self.keys.job(job), "status") == status.encode()

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def each_held_job_is_in_one_place(self) -> None:
        fresh = {d.key for d in self.w._fresh}
        waiting = {d.key for _, d in self.w._prefetch.waiting}
        for d in self._held():
            places = [d.key in fresh, d.key in waiting, d.runner is not None]
            assert places.count(True) == 1, (d.id, places)

    @invariant()
    def redis_says_what_the_worker_holds(self) -> None:
        for d in self._held():
            status, lease = self.r.hmget(self.keys.job(d.id), "status", "lease")
            if d.aborted:
                assert status == b"aborted", (d.id, status)
            else:
                assert (status, lease) == (b"active", d.job.lease.encode()), (d.id, status)

    @invariant()
    def nothing_starts_once_stopped_or_twice(self) -> None:
        with self.gates.lock:
            starts = list(self.gates.starts)
        seen: set[tuple[str, str]] = set()
        for job, lease, clock in starts:
            assert (job, lease) not in seen, f"{job} started twice under lease {lease}"
            seen.add((job, lease))
            for key in ((job, lease), (job, "*")):
                if key in self.stopped_at:
                    assert clock < self.stopped_at[key], (
                        f"{job} (lease {lease}) started after its abort, loss or hand-back"
                    )

    @invariant()
    def nothing_is_lost(self) -> None:
        for job in self.jobs:
            status = self.r.hget(self.keys.job(job), "status")
            assert status in (b"queued", b"active", b"finished", b"aborted"), (job, status)
        for job in self.done:
            assert self._is(job, "finished"), (job, self.r.hget(self.keys.job(job), "status"))
