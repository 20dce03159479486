"""The shared poll clock: loops with the same delay wake at the same grid instant on one
timer, and a loop cancelled while it waits does not take the others' tick with it."""

from __future__ import annotations

import asyncio

from kubeq_operator.ticker import Ticker


def test_loops_with_one_delay_share_one_tick_and_wake_on_the_grid() -> None:
    async def run() -> tuple[list[float], int]:
        ticker, loop = Ticker(), asyncio.get_running_loop()
        woke: list[float] = []

        async def one() -> None:
            await ticker.wait(0.2)
            woke.append(loop.time())

        # start just after a grid instant, so all fifty waits begin inside one interval
        # (started at a random moment, they can straddle an instant on a loaded machine,
        # and two timers are then right)
        await ticker.wait(0.2)
        started = loop.time()
        tasks = [asyncio.create_task(one()) for _ in range(50)]
        await asyncio.sleep(0)
        pending = len(ticker)
        assert loop.time() - started < 0.2, "the fifty waits began within one interval"
        await asyncio.gather(*tasks)
        return woke, pending

    woke, pending = asyncio.run(run())
    assert pending == 1, "fifty loops with one delay wait on one timer"
    assert len(woke) == 50
    # all at or after the grid instant the first one was given (a multiple of the delay)
    tick = (int(min(woke) / 0.2 + 1e-9)) * 0.2
    assert all(t >= tick - 1e-6 for t in woke)


def test_a_cancelled_waiter_leaves_the_tick_to_the_others() -> None:
    async def run() -> bool:
        ticker = Ticker()
        a = asyncio.create_task(ticker.wait(0.2))
        b = asyncio.create_task(ticker.wait(0.2))
        await asyncio.sleep(0)
        a.cancel()
        await asyncio.wait_for(b, timeout=5)
        return a.cancelled()

    assert asyncio.run(run())
