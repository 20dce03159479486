"""The poll clock every TaskQueue loop waits on: one timer per tick, not one per loop.

Each loop's passes fall on a grid (multiples of its delay on the event loop's monotonic
clock), so the loops of TaskQueues with the same poll interval wake at the same instants and
their Redis reads go out as one pipeline (``redis_shared.StatsBatch``). :class:`Ticker` gives
all the loops waiting for one grid instant one shared future and one timer: a wait costs a
callback on that future, where a time-limited wait of its own (kopf's ``stopped.wait(n)``)
costs two tasks and a timer per loop per pass. A loop stops by cancellation (kopf cancels an
async daemon when it stops it), which the shared future does not see.
"""

from __future__ import annotations

import asyncio
import math


def on_grid(delay: float, now: float) -> float:
    """The wait from ``now`` to the next multiple of ``delay``: loops with the same delay wake
    together, so their Redis reads share a round trip. Never more than ``delay``."""
    if delay <= 0:
        return 0.0
    return delay - (now % delay) or delay


class Ticker:
    """Shared waits until the next multiple of a delay, on one event loop."""

    def __init__(self) -> None:
        self._ticks: dict[tuple[float, int], asyncio.Future[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def wait(self, delay: float) -> None:
        """Until the next multiple of ``delay`` seconds (at most ``delay`` away)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a future belongs to one event loop
            self._ticks, self._loop = {}, loop
        if delay <= 0:
            await asyncio.sleep(0)
            return
        now = loop.time()
        index = math.floor(now / delay) + 1
        key = (delay, index)
        tick = self._ticks.get(key)
        if tick is None:
            tick = self._ticks[key] = loop.create_future()
            loop.call_at(index * delay, self._fire, key)
        # shielded: a loop cancelled while it waits must not cancel the others' tick
        await asyncio.shield(tick)

    def _fire(self, key: tuple[float, int]) -> None:
        tick = self._ticks.pop(key, None)
        if tick is not None and not tick.done():
            tick.set_result(None)

    def __len__(self) -> int:
        """Ticks with a timer pending."""
        return len(self._ticks)


TICKER = Ticker()
"""The operator's one poll clock."""
