"""The worker's idle wait: block on the queues' wake lists, and beat rarely, instead of polling.

Enqueue pushes a token onto a queue's wake list; an idle worker blocks on those lists (BLPOP)
so it reacts to new work at once, and sends nothing else until it must. On Redis Cluster a
BLPOP may name keys of one hash slot only, so there is one wait per slot
(``FetchRouter.wake_keys``). A wait still blocked from an earlier pass is kept (no
connection churn); a finished one is replaced.

What an idle worker must still notice without a token, and how: every ``BEAT_SECONDS`` (at
most every lease) one ``idle.lua`` call per slot records that it is alive until its next
beat (the operator and the dashboard count live workers by it) and answers how long until
the earliest delayed job falls due or the earliest lease expires (a worker died: its job must
be reclaimed, which a fetch does); the wait ends then, or at once when jobs are ready that
nobody was woken for (a rate limit held them back). So an idle worker on one queue costs
Redis a BLPOP per ``BLOCK_SECONDS`` and one small script per ``BEAT_SECONDS``
(docs/architecture.md, Idle workers); a new job still starts at once, and a dead worker's
job is still reclaimed when its lease expires.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable
from typing import Any, cast

import redis.asyncio

from kubeq.store.scripts import ScriptCall, run_pipeline_async
from kubeq.store.wire import fetch_args
from kubeq.worker.fetch import FetchRouter
from kubeq.worker.health import Vitals
from kubeq.worker.settings import WorkerSettings

BEAT_SECONDS = 20.0
"""How often an idle worker records that it is alive and looks for work due (at most every
lease, so a lease taken after one beat is seen before it can expire)."""

BLOCK_SECONDS = 10.0
"""How long one BLPOP blocks in Redis: below the client's 15 s socket timeout and health
check interval (``connections``), so the blocked connection is never checked by a PING."""


class WakeWaits:
    """The blocked wake-up waits of one worker, and its idle beat."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        router: FetchRouter,
        script: Any,
        settings: WorkerSettings,
        vitals: Vitals,
    ) -> None:
        self._redis = client
        self._router = router
        self._script = script
        self._worker_id = settings.worker_id
        self._vitals = vitals
        # the loop must turn and reach Redis well within --stall-seconds (health.py)
        stall = settings.stall_seconds
        self._block = max(0.5, min(BLOCK_SECONDS, stall / 4))
        self._beat_every = max(0.5, min(BEAT_SECONDS, stall / 4, settings.lease_seconds))
        self._waits: list[asyncio.Task[Any] | None] = []
        self._beat_at = 0.0
        """When (monotonic) the next idle beat is due."""

    async def wait(self, activity: asyncio.Event, wait_ms: int = -1) -> int:
        """Until enqueue wakes a queue, ``activity`` is set, ``wait_ms`` passes (a job held
        back for a time may run then; -1: none) or an idle beat finds work due. Returns how
        many round trips it made; raises what a wait met (an outage), after stopping them."""
        deadline = math.inf if wait_ms < 0 else time.monotonic() + wait_ms / 1000
        trips = 0
        while not activity.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= self._beat_at:
                due_ms = await self._beat()
                trips += 1
                now = time.monotonic()
                if due_ms == 0:
                    self._beat_at = now + self._beat_every
                    break  # work is due: fetch
                soon = self._beat_every if due_ms < 0 else min(self._beat_every, due_ms / 1000)
                self._beat_at = now + soon
            woken, answered = await self._block_until(activity, min(deadline, self._beat_at))
            trips += answered
            if answered:
                self._vitals.tick()
                self._vitals.round_trip()
            if woken:
                break
        return trips

    async def _beat(self) -> int:
        """One idle.lua call per slot: ms until work is due (0: now; -1: none waits)."""
        calls: list[ScriptCall] = []
        for group in self._router.groups:
            keys, _ = fetch_args(self._worker_id, 0, 0, 0, 0, group)
            ahead_ms = int(self._beat_every * 1000)
            calls.append((self._script, keys, [self._worker_id, len(group), ahead_ms]))
        replies = await run_pipeline_async(self._redis, calls)
        self._vitals.tick()
        self._vitals.round_trip()
        due = [int(r) for r in replies if int(r) >= 0]
        return min(due) if due else -1

    async def _block_until(self, activity: asyncio.Event, until: float) -> tuple[bool, int]:
        """Block on the wake lists until ``until`` (monotonic) at most. Returns (a token came
        or ``activity`` was set, how many waits answered)."""
        groups = self._router.wake_keys()
        if len(self._waits) != len(groups):
            self.stop()
            self._waits = [None] * len(groups)
        for i, keys in enumerate(groups):
            w = self._waits[i]
            if w is None or w.done():
                self._waits[i] = asyncio.create_task(self._blpop(keys))
        waits = {w for w in self._waits if w is not None}
        woken = asyncio.create_task(activity.wait())
        try:
            left = max(0.0, until - time.monotonic())
            await asyncio.wait({*waits, woken}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        answered, token = 0, False
        for i, w in enumerate(self._waits):
            if w is not None and w.done() and not w.cancelled():
                try:
                    token = token or w.result() is not None
                except BaseException:
                    self.stop()
                    raise
                answered += 1
                self._waits[i] = None
        return token or activity.is_set(), answered

    def blocked(self) -> bool:
        """Whether a wait from an earlier pass is still blocked (it is kept for the next)."""
        return any(w is not None and not w.done() for w in self._waits)

    def stop(self) -> None:
        """Cancel the blocked waits (redis-py drops a cancelled command's connection, so no
        late reply is left in a pooled one)."""
        for w in self._waits:
            if w is not None and not w.done():
                w.cancel()
        self._waits = []

    async def _blpop(self, keys: list[str]) -> Any:
        # the cast: redis-py before 8.0 types a reply as "T | Awaitable[T]" (and the timeout
        # as an int, though Redis takes seconds with a fraction)
        client: Any = self._redis
        blocked = client.blpop(keys, timeout=self._block)
        return await cast("Awaitable[Any]", blocked)
