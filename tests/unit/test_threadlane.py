"""The thread lane (kubeq/worker/threads.py) and the prefetch room (kubeq/worker/prefetch.py),
on real threads and a real event loop, no Redis: every run comes back exactly once, a run
cancelled before a thread took it never runs, threads start only when a run would wait, no
more runs than slots run at once and the thread that frees a slot runs the next that waits,
reserved and abandoned slots, the prefetch room follows the measured run time, and the refill
goes before what waits runs out."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from collections.abc import Callable

import pytest

from kubeq import defaults
from kubeq.worker.prefetch import Prefetch
from kubeq.worker.threads import Lane

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_a_thousand_runs_come_back_each_with_its_value() -> None:
    async def main() -> None:
        lane = Lane(4)
        try:
            runs = [
                lane.submit(functools.partial(int.__mul__, i, 2), contextvars.copy_context())
                for i in range(1000)
            ]
            assert await asyncio.gather(*(r.future for r in runs)) == [i * 2 for i in range(1000)]
            assert all(r.back for r in runs)
            assert lane._threads <= 4
        finally:
            lane.close()

    asyncio.run(main())


def test_a_run_sees_the_context_it_was_submitted_in_and_exceptions_come_back() -> None:
    def boom() -> None:
        raise KeyError("inside")

    def stop() -> None:
        raise StopIteration

    async def main() -> None:
        lane = Lane(2)
        try:
            var.set("caller")
            assert await lane.submit(var.get, contextvars.copy_context()).future == "caller"
            with pytest.raises(KeyError, match="inside"):
                await lane.submit(boom, contextvars.copy_context()).future
            with pytest.raises(RuntimeError, match="StopIteration"):
                await lane.submit(stop, contextvars.copy_context()).future
        finally:
            lane.close()

    asyncio.run(main())


def test_a_run_cancelled_before_a_thread_took_it_never_runs() -> None:
    gate = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        lane = Lane(1)
        try:
            busy = lane.submit(lambda: gate.wait(5), contextvars.copy_context())
            queued = lane.submit(lambda: ran.append("queued"), contextvars.copy_context())
            while not busy.claimed:
                await asyncio.sleep(0.001)
            assert lane.cancel(queued) is True  # no thread took it: it will not run
            assert lane.cancel(busy) is False  # a thread runs it: it runs on
            gate.set()
            assert await busy.future is True
            while not queued.back:
                await asyncio.sleep(0.001)
            assert queued.future.cancelled()
            assert ran == []
        finally:
            lane.close()

    asyncio.run(main())


def test_threads_start_only_when_a_run_would_wait_up_to_the_limit() -> None:
    gate = threading.Event()

    async def main() -> None:
        lane = Lane(3)
        try:
            for _ in range(5):
                assert await lane.submit(lambda: 1, contextvars.copy_context()).future == 1
            assert lane._threads == 1  # one at a time: the idle thread served them all
            blocked = [
                lane.submit(lambda: gate.wait(5), contextvars.copy_context()) for _ in range(5)
            ]
            assert lane._threads == 3  # capped
            gate.set()
            assert await asyncio.gather(*(r.future for r in blocked)) == [True] * 5
        finally:
            lane.close()

    asyncio.run(main())


class _Probe:
    """Records, for each call, the thread it ran in, and the most calls running at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: list[int] = []

    def call(self, gate: threading.Event | None = None) -> Callable[[], int]:
        def run() -> int:
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
                self.threads.append(threading.get_ident())
            if gate is not None:
                gate.wait(5)
            with self.lock:
                self.running -= 1
            return threading.get_ident()

        return run


async def _settle(seconds: float = 0.05) -> None:
    """Give the lane's threads time to do what they would (a wrong run shows up by then)."""
    await asyncio.sleep(seconds)


def test_runs_beyond_the_slots_wait_and_the_thread_that_frees_a_slot_runs_them() -> None:
    probe = _Probe()
    gates = [threading.Event(), threading.Event()]

    async def main() -> None:
        lane = Lane(8, slots=2)
        try:
            busy = [lane.submit(probe.call(g), contextvars.copy_context()) for g in gates]
            quick = [lane.submit(probe.call(), contextvars.copy_context()) for _ in range(4)]
            await _settle()
            assert probe.running == 2 and len(probe.threads) == 2  # the quick ones wait
            assert (lane.free(), lane.waiting()) == (0, 4)
            assert not any(r.claimed for r in quick)
            gates[0].set()  # one slot frees: its thread runs every waiting run, in order
            first = await busy[0].future
            assert await asyncio.gather(*(r.future for r in quick)) == [first] * 4
            assert probe.threads[2:] == [first] * 4
            assert probe.most == 2  # never more than the slots
            gates[1].set()
            await busy[1].future
            assert (lane.free(), lane.waiting()) == (2, 0)
        finally:
            for g in gates:
                g.set()
            lane.close()

    asyncio.run(main())


def test_a_reserved_slot_holds_lane_runs_back_until_it_is_given_back() -> None:
    probe = _Probe()

    async def main() -> None:
        lane = Lane(4, slots=1)
        try:
            assert lane.reserve() is True
            assert lane.reserve() is False  # the one slot is taken
            waiting = lane.submit(probe.call(), contextvars.copy_context())
            await _settle()
            assert probe.threads == [] and lane.waiting() == 1
            paid = lane.submit(probe.call(), contextvars.copy_context(), prepaid=True)
            await paid.future  # runs on the slot its caller reserved
            assert len(probe.threads) == 1 and lane.waiting() == 1
            lane.unreserve()
            await waiting.future
            assert len(probe.threads) == 2 and lane.free() == 1
        finally:
            lane.close()

    asyncio.run(main())


def test_an_abandoned_run_gives_its_slot_to_the_next_and_a_cancelled_one_never_runs() -> None:
    probe = _Probe()
    stuck = threading.Event()

    async def main() -> None:
        lane = Lane(4, slots=1)
        try:
            first = lane.submit(probe.call(stuck), contextvars.copy_context())
            dropped = lane.submit(probe.call(), contextvars.copy_context())
            after = lane.submit(probe.call(), contextvars.copy_context())
            await _settle()
            assert lane.waiting() == 2
            assert lane.cancel(dropped) is True  # it waited: it will not run
            assert lane.cancel(first) is False  # it runs: it runs on...
            lane.abandon(first)  # ...abandoned by its caller: its slot goes to the next
            got = await after.future
            assert got != threading.get_ident() and probe.running == 1  # `first` still runs
            while not dropped.back:
                await asyncio.sleep(0.001)
            assert dropped.future.cancelled()
            assert len(probe.threads) == 2  # `first` and `after`; `dropped` never ran
            stuck.set()
            await first.future
            assert lane.free() == 1
        finally:
            stuck.set()
            lane.close()

    asyncio.run(main())


def test_close_lets_idle_threads_end() -> None:
    async def main() -> None:
        lane = Lane(2)
        await lane.submit(lambda: None, contextvars.copy_context()).future
        lane.close()
        deadline = time.monotonic() + 5
        while lane._threads and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert lane._threads == 0

    asyncio.run(main())


def test_prefetch_room_follows_the_measured_run_time() -> None:
    p: Prefetch[int] = Prefetch(concurrency=4, budget_ms=50)
    assert p.room() == 0  # nothing timed yet: only the free slots
    p.observe(0.010)  # 10 ms a job: 4 slots finish 20 jobs in 50 ms
    assert p.room() == 20
    for _ in range(60):
        p.observe(0.000001)  # a moving average: it takes a few runs to follow
    assert p.room() == defaults.PREFETCH_MAX  # capped
    for _ in range(60):
        p.observe(2.0)  # the jobs turned slow: nothing ahead
    assert p.room() == 0
    assert Prefetch(concurrency=4, budget_ms=0).room() == 0  # --prefetch-ms 0


def test_prefetched_jobs_go_back_only_when_the_slots_are_slow() -> None:
    p: Prefetch[str] = Prefetch(concurrency=2, budget_ms=50)
    for _ in range(20):
        p.observe(0.001)
    p.hold("a")
    p.hold("b")
    assert p.stale() == []  # short runs, just leased: they stay
    p.observe(0.002)
    assert p.stale() == []  # another short run ended: still no reason
    p.observe(0.5)  # a run took longer than 4 budgets (200 ms): the slots are slow
    assert p.stale() == ["a", "b"]
    assert p.take() is None
    p.observe(0.001)
    p.hold("c")
    p.last_end -= 1.0  # no run ended for a second...
    assert p.stale() == []  # ...but "c" was leased just now: it has not waited
    p.waiting[0] = (p.waiting[0][0] - 1.0, "c")  # and now it has waited a second too
    assert p.stale() == ["c"]


def test_the_refill_goes_before_what_waits_runs_out() -> None:
    p: Prefetch[int] = Prefetch(concurrency=128, budget_ms=50)
    for _ in range(60):
        p.observe(0.0001)
    assert p.room() == defaults.PREFETCH_MAX
    half = defaults.PREFETCH_MAX // 2
    assert p.refill_at() == half  # nothing measured yet: half the room
    p._mark = (time.monotonic() - 0.010, 0)  # 200 jobs leased in the last 10 ms: 20,000/s
    p.round_trip(0.010, 200)  # and a round trip takes 10 ms: 200 jobs run while it is out
    assert p.rate is not None and 15_000 < p.rate < 21_000
    assert p.refill_at() == int(p.rate * 0.010 * 1.5)  # more than half the room: go sooner
    assert p.refill_at() > half
    p.round_trip(0.010, 200)  # a round trip that leased nothing (idle): the rate stays
    assert p.rate is not None and p.rate > 15_000
    slow: Prefetch[int] = Prefetch(concurrency=4, budget_ms=50)
    for _ in range(60):
        slow.observe(0.001)  # 4 slots, 1 ms a job: room 200 (50 ms), taken at about 4,000/s
    assert slow.room() == min(200, defaults.PREFETCH_MAX)
    slow._mark = (time.monotonic() - 0.1, 0)
    slow.round_trip(0.001, 400)  # a 1 ms round trip: 6 jobs in 1.5 of them
    assert slow.refill_at() == slow.room() // 2  # half the room is more: the acks still gather
