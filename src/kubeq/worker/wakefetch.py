"""What a fetch's reply becomes, and the hot wait: an idle worker's fetch sent behind its BLPOP.

``_take_fetch`` turns the replies of a pass's fetch calls into deliveries: each leased job
is held (``inflight``) and placed soon after (state.py, ``_place_fresh``); the worker's own
running job that comes back under its token (its lease lapsed before a late heartbeat) goes
on as it was.

**The hot wait.** A worker woken by enqueue learns of the job in two round trips: its
BLPOP returns a token, then it sends a fetch. For ``HOT_SECONDS`` after it last leased or
ended a job, a worker with free slots and nothing to fetch writes a fetch for those slots in
the same write as the BLPOP, on one connection: Redis runs the fetch the moment the BLPOP
returns (a token came, or the hot window ran out), and both replies come back together, a
round trip sooner. While it is blocked, the worker's passes send outcomes without a fetch (it
is this worker's fetch), and a job ending does not end it. Once the window has run out the
worker waits as before (idle.py: a BLPOP alone, kept across passes, and the idle beat), so an
idle worker still costs Redis under one command a second.

What keeps it safe:

* it is never cancelled while the worker runs: it ends by itself within the window, and its
  fetch's reply is always read. A worker asked to stop reads it first (``_end_hot``) and
  hands back, unstarted, the jobs it leased (``_place_fresh``), as with any fetch's reply;
* it asks for the slots free when it is written, and no other fetch is sent until it has
  answered, so a worker never holds more than its capacity;
* its fetch is numbered before it is written (``_fetch_seq``), so the heartbeat renews from
  the transit log whatever that fetch leased until its reply is read, however late;
* its fetch records the worker's busy count (the operator scales on it) as it was when the
  wait was written; when jobs ended meanwhile, the count is written again by a heartbeat
  (``_busy_stale``) before the worker idles, so an idle worker is never left counted busy;
* it is used only where one BLPOP and one fetch cover every queue: one Redis (not Cluster)
  and a plain client (``store.direct.plain``), not by a ``--burst`` or ``--max-jobs``
  worker, not while outcomes wait to be sent or a plain wait is still blocked (that one
  stays), and not when a held-back job falls due inside the window (the plain wait's timer
  is exact).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from kubeq import defaults
from kubeq.store import direct as store_direct
from kubeq.store.scripts import evalsha_command
from kubeq.worker.delivery import Delivery
from kubeq.worker.direct import DirectLane
from kubeq.worker.state import REDIS_DOWN

log = logging.getLogger("kubeq.worker")

HOT_SECONDS = 1.0
"""How long after a worker last leased or ended a job its idle waits carry a fetch."""

END_HOT_SECONDS = HOT_SECONDS + 2.0
"""How long a stopping worker waits for its hot wait's replies (its BLPOP ends within the
window; more means Redis is not answering)."""

MIN_HOT_SECONDS = 0.02
"""Less than this left of the window: wait as before (a BLPOP's timeout has ms precision)."""


class WakeFetch(DirectLane):
    """A fetch's reply taken in, and the hot wait."""

    _hot_until = 0.0
    """Until when (monotonic) an idle wait carries a fetch (``HOT_SECONDS`` after a job)."""
    _hot_able: bool | None = None
    """Whether this worker's queues, settings and client allow the hot wait (decided once)."""
    _hot: asyncio.Task[list[Any]] | None = None
    """The hot wait blocked in Redis, until its replies are taken in."""
    _hot_busy = 0
    """The jobs in flight when the hot wait was written: the busy count its fetch records."""

    def _warm(self) -> None:
        """A job was leased or ended: idle waits carry a fetch for ``HOT_SECONDS``."""
        self._hot_until = time.monotonic() + HOT_SECONDS

    def _capacity(self) -> int:
        """Jobs this worker may hold: its slots, plus the prefetch room (prefetch.py), no
        more than ``max_jobs`` leases in its life, and once its version is retired only the
        jobs pinned to it (it finishes what it holds)."""
        if self._retired and not self._pinned:
            return 0
        room = self.settings.concurrency + self._prefetch.room()
        if self.settings.max_jobs is not None:
            room = min(room, self.settings.max_jobs - self._leased + len(self.inflight))
        return room

    def _take_fetch(self, results: list[Any]) -> int:
        """The replies of one pass's fetch calls (``FetchRouter.calls``): the jobs leased
        are held and placed soon after; returns the jobs still ready. Raises the first error
        Redis answered, after taking in the jobs the other calls leased."""
        reply, error = self._router.merge(results)
        if error is not None and not reply.jobs:
            raise error
        self._wait_ms = reply.wait_ms
        now_ms = time.time() * 1000
        fresh = self._fresh
        inflight = self.inflight
        for job in reply.jobs:
            key = (job.queue.name, job.id)  # the delivery's ``key``
            running = inflight.get(key)
            if running is not None and not running.settled:
                # Our own running job came back: its lease lapsed before a (late) heartbeat
                # renewed it, and this fetch took it back under the same lease token
                # (fetch.lua), so the run in progress goes on as it was.
                log.warning(
                    "job %s: its lease lapsed while it ran here (late heartbeat); "
                    "this worker took it back and keeps running it",
                    job.id,
                )
                continue
            d = Delivery(job)
            inflight[key] = d
            self._leased += 1
            if self._timed:
                self._metric(self.metrics.wait, job.queue.name).observe(
                    max(0.0, (now_ms - job.ready_at_ms) / 1000)
                )
            fresh.append(d)
        if reply.jobs:
            self._warm()
        if fresh and self._placing is None:  # placed once the next round trip is on its way
            self._placing = asyncio.get_running_loop().call_soon(self._place_fresh)
        if error is not None:  # the jobs other slots' fetches leased run; this one is retried
            raise error
        return reply.remaining

    def _hot_seconds(self, wait_ms: int) -> float:
        """How long the next idle wait may block with a fetch behind it (0: wait as before)."""
        left = self._hot_until - time.monotonic()
        if left < MIN_HOT_SECONDS or self._acks or self._fresh or self._stopping:
            return 0.0
        if 0 <= wait_ms < left * 1000 or self._wakes.blocked():
            return 0.0
        if self._hot_able is None:
            s = self.settings
            one_node = not self._router.cluster and len(self._router.groups) == 1
            single = not s.burst and s.max_jobs is None
            self._hot_able = one_node and single and store_direct.plain(self._redis)
        if not self._hot_able or self._capacity() - len(self.inflight) <= 0:
            return 0.0
        return left

    def _arm_hot(self, seconds: float) -> None:
        """Write the BLPOP and, behind it, a fetch for every free slot (module docstring)."""
        want = self._capacity() - len(self.inflight)
        seq = self._fetch_seq = self._fetch_seq + 1
        s = self.settings
        self._hot_busy = len(self.inflight)
        (call,) = self._router.calls(
            self._scripts.fetch,
            s.worker_id,
            want,
            int(s.lease_seconds * 1000),
            self._hot_busy,
            defaults.WORKER_TTL_MS,
            seq,
        )
        (keys,) = self._router.wake_keys()
        commands = [("BLPOP", *keys, f"{seconds:.3f}"), evalsha_command(call)]
        self._hot = asyncio.get_running_loop().create_task(self._blocked_fetch(commands, seq))

    async def _blocked_fetch(self, commands: list[tuple[Any, ...]], seq: int) -> list[Any]:
        try:
            replies = await store_direct.run_direct(self._redis, commands)
        finally:
            self._answered = seq  # read, or lost with the connection: it leaves the transit log
        assert replies is not None  # _hot_seconds checked the client
        return replies

    async def _hot_or_activity(self) -> int | None:
        """Until the hot wait answers (returns the jobs still ready after its fetch, None when
        Redis refused the fetch) or ``_activity`` is set (None: it stays blocked)."""
        hot = self._hot
        assert hot is not None
        if not hot.done():
            woken = asyncio.ensure_future(self._activity.wait())
            try:
                await asyncio.wait({hot, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
        return self._take_hot() if hot.done() else None

    def _take_hot(self) -> int | None:
        """The answered hot wait's replies taken in (raises what it met: an outage)."""
        hot, self._hot = self._hot, None
        assert hot is not None
        token, raw = hot.result()
        self.vitals.tick()
        self.vitals.round_trip()
        if isinstance(token, BaseException):  # e.g. a wake list of another type: wait as before
            self._hot_until = 0.0
        if isinstance(raw, BaseException):  # NOSCRIPT after a restart, a refused script
            return None
        if len(self.inflight) != self._hot_busy:
            # jobs ended while it was blocked: its fetch recorded them as still busy, and an
            # idle worker writes nothing more, so the count is written again (a heartbeat)
            # before the worker idles, or by the next heartbeat
            self._busy_stale = True
        try:
            return self._take_fetch([raw])
        finally:
            self._gauge_holding()

    async def _write_busy(self) -> None:
        """Before the worker idles: when a hot wait's fetch recorded jobs that had ended as
        busy, a heartbeat writes the count it holds now (an idle worker writes nothing else
        for a while, and the operator scales on it)."""
        if self._busy_stale and await self._heartbeat():
            self.vitals.round_trip()

    async def _end_hot(self) -> None:
        """The worker stops: read the hot wait's reply (within its window), so that the jobs
        it leased are handed back now rather than when their lease expires. A Redis that
        does not answer by ``END_HOT_SECONDS`` is not waited for (the drain's time is the
        pod's grace period): the wait is dropped, and whatever it leased lapses with its
        lease and runs again."""
        hot = self._hot
        if hot is None:
            return
        await asyncio.wait({hot}, timeout=END_HOT_SECONDS)
        if not hot.done():
            hot.cancel()
            self._hot = None
            log.warning("the last fetch's reply did not come in %.0f s: not read", END_HOT_SECONDS)
            return
        try:
            self._take_hot()
        except REDIS_DOWN as exc:  # its jobs lapse with their lease and run again
            log.warning("the last fetch's reply was lost: %s", exc)
