"""The worker's idle wait: block on the queues' wake lists instead of polling.

Enqueue pushes a token onto a queue's wake list; an idle worker blocks on those lists
(BLPOP, at most a second at a time) so it reacts to new work at once without a fetch per
tick. On Redis Cluster a BLPOP may name keys of one hash slot only, so there is one wait
per slot (``FetchRouter.wake_keys``). A wait still blocked from an earlier pass is kept
(no connection churn); a finished one is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, cast

import redis.asyncio

from kubeq.worker.fetch import FetchRouter

BLOCK_SECONDS = 1
"""How long one BLPOP blocks in Redis: short enough that a lost connection is seen soon."""

IDLE_CAP_SECONDS = 2.0
"""The longest idle wait before the loop goes round (and ticks its vitals) again."""


class WakeWaits:
    """The blocked wake-up waits of one worker."""

    def __init__(self, client: redis.asyncio.Redis, router: FetchRouter) -> None:
        self._redis = client
        self._router = router
        self._waits: list[asyncio.Task[Any] | None] = []

    async def wait(self, activity: asyncio.Event, wait_ms: int = -1) -> int:
        """Until enqueue wakes a queue, ``activity`` is set, or ``wait_ms`` passes (a job
        held back for a time may run then; -1: none). Returns how many waits answered (each
        a Redis round trip); raises what a wait met (an outage), after stopping them all."""
        groups = self._router.wake_keys()
        if len(self._waits) != len(groups):
            self.stop()
            self._waits = [None] * len(groups)
        for i, keys in enumerate(groups):
            w = self._waits[i]
            if w is None or w.done():
                if w is not None and not w.cancelled():
                    with contextlib.suppress(BaseException):
                        w.result()  # ended after the last look: a token, or an error seen again
                self._waits[i] = asyncio.create_task(self._blpop(keys))
        waits = {w for w in self._waits if w is not None}
        woken = asyncio.create_task(activity.wait())
        try:
            cap = IDLE_CAP_SECONDS if wait_ms < 0 else min(IDLE_CAP_SECONDS, wait_ms / 1000)
            await asyncio.wait({*waits, woken}, timeout=cap, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        answered = 0
        for w in waits:
            if w.done() and not w.cancelled():
                try:
                    w.result()
                except BaseException:
                    self.stop()
                    raise
                answered += 1
        return answered

    def stop(self) -> None:
        """Cancel the blocked waits (redis-py drops a cancelled command's connection, so no
        late reply is left in a pooled one)."""
        for w in self._waits:
            if w is not None and not w.done():
                w.cancel()
        self._waits = []

    async def _blpop(self, keys: list[str]) -> Any:
        # the cast: redis-py before 8.0 types a reply as "T | Awaitable[T]"
        return await cast("Awaitable[Any]", self._redis.blpop(keys, timeout=BLOCK_SECONDS))
