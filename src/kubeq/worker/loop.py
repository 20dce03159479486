"""The worker runtime: fetch, run, acknowledge, renew leases, drain on SIGTERM.

One asyncio loop owns all Redis traffic. Each pass sends the acknowledgements of every job
that ended since the last pass and, when slots are free, a fetch of up to that many jobs,
all in ONE pipelined round trip; the jobs a reply brings are placed once the next round trip
is written (state.py, ``_place_fresh``). With nothing to do it blocks on the queues' wake
lists (BLPOP, woken by enqueue), so it reacts at once without polling, and beats rarely
(idle.py: an idle worker costs Redis under one command a second); soon after a job its
fetch rides behind that BLPOP (wakefetch.py, the hot wait).

Where a task runs: ``async def`` tasks on the loop; sync tasks in a thread pool, or in a
process pool with ``--pool process`` (or ``@app.task(pool="process")`` for one CPU-bound
task). A task's lease is renewed by a heartbeat every ``heartbeat_interval`` while it runs.

Shutdown and Kubernetes: on SIGTERM the worker stops fetching at once, lets running jobs
finish for up to ``drain_timeout`` seconds, hands back (re-queues, no attempt counted) what
is still running, and exits 0. Keep ``drain_timeout`` below the pod's
terminationGracePeriodSeconds (30 s by default, hence the 25 s default here) so the kubelet
never has to SIGKILL a worker; if it does, the lease expires and the job runs again.
A second SIGTERM/SIGINT hands everything back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import traceback
from collections.abc import Awaitable
from typing import Any, cast

from redis.exceptions import ResponseError

from kubeq import defaults, tracing
from kubeq.outcomes import Outcome, Settlement
from kubeq.store import cluster as rediscluster
from kubeq.store import urls
from kubeq.store.keys import queues_key
from kubeq.store.scripts import ScriptCall, run_pipeline_async
from kubeq.worker.delivery import Delivery, run_attempt
from kubeq.worker.execution import JobTimeout
from kubeq.worker.settings import WorkerSettings, default_worker_id
from kubeq.worker.state import REDIS_DOWN
from kubeq.worker.tally import Unserved
from kubeq.worker.wakefetch import WakeFetch

log = logging.getLogger("kubeq.worker")

__all__ = ["Delivery", "JobTimeout", "Worker", "WorkerSettings", "default_worker_id"]


class Worker(WakeFetch):
    """A worker process's loop. ``asyncio.run(Worker(settings, tasks).run())``."""

    async def run(self) -> int:
        """Consume until stopped; returns the process exit code."""
        s = self.settings
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if s.handle_signals else ()
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        server = None
        if s.metrics_port and not isinstance(self.metrics, Unserved):
            from kubeq.worker.metrics import serve  # noqa: PLC0415 - see tally.py

            try:
                server = serve(self.metrics, self.health, s.metrics_port)
            except OSError as exc:  # e.g. two local worker processes on one port
                log.warning("no /metrics or /healthz: port %d: %s", s.metrics_port, exc)
        log.info(
            "worker %s consuming %s from %s with %d %s slots; tasks: %s",
            s.worker_id,
            ", ".join(s.queues),
            urls.redact(urls.resolve_url(s.redis_url)),
            s.concurrency,
            s.pool,
            ", ".join(sorted(self.tasks)),
        )
        self._start_background("heartbeat", self._heartbeat_loop())
        try:
            await self._register()
            await self._consume()
            await self._end_hot()
            await self._drain()
        finally:
            await self._stop_background()  # an error that ended one was logged when it did
            if self._handoffs:  # callbacks of the last acks: else the next worker's sweep
                await asyncio.wait(set(self._handoffs), timeout=5)
            await self._leave()
            self._wakes.stop()
            if self._hot is not None:  # only when the loop failed: its jobs lapse and run again
                self._hot.cancel()
            await self._redis.aclose()
            if server is not None:
                server.shutdown()
            self.executor.shutdown()
        log.info("worker %s stopped", s.worker_id)
        return self.exit_code

    async def _register(self) -> None:
        while not self._stopping:
            try:
                # the cast: redis-py before 8.0 types a reply as "T | Awaitable[T]"
                added = self._redis.sadd(queues_key(self.settings.prefix), *self.settings.queues)
                await cast("Awaitable[object]", added)
                self._redis_up()
                return
            except REDIS_DOWN as exc:
                await self._redis_failed(exc)

    async def _leave(self) -> None:
        calls: list[ScriptCall] = [
            (self._scripts.leave, q.script_keys, [self.settings.worker_id]) for q in self.queues
        ]
        with contextlib.suppress(*REDIS_DOWN, TimeoutError):
            async with asyncio.timeout(2.0):  # if Redis is gone, its heartbeat just expires
                await run_pipeline_async(self._redis, calls)

    async def _consume(self) -> None:
        woken: int | None = None  # the jobs still ready after a hot wait's fetch
        while not self._stopping:
            self.vitals.tick()
            try:
                if woken is None and self._hot is not None and self._hot.done():
                    woken = self._take_hot()  # answered while every slot was busy
                if woken is None:  # no fetch while a hot wait's is this worker's
                    remaining = await self._round_trip(fetch=self._hot is None)
                else:  # a hot wait's fetch was this pass's (wakefetch.py)
                    remaining, woken = woken, None
                self._redis_up()
            except ResponseError as exc:
                if rediscluster.is_outage(exc):  # a cluster moving a slot or failing over
                    await self._redis_failed(exc)
                else:
                    await self._script_failed(exc)
                continue
            except REDIS_DOWN as exc:
                await self._redis_failed(exc)
                continue
            self._script_error = None
            if self.stopping:
                break
            free = self._capacity() - len(self.inflight)
            if self.settings.burst and self._burst_done(free, remaining):
                log.info("burst: the queues are empty and nothing is in flight; stopping")
                break
            if self._max_jobs_done():
                log.info("max jobs: %d jobs leased and settled; stopping", self._leased)
                break
            if (free > 0 and remaining > 0) or self._acks:
                # work waits and we have room, or jobs ended: go round at once, unless enough
                # prefetched jobs wait here to batch the next round trip (prefetch.py)
                while (hold := self._hold_seconds()) > 0 and not self._stopping:
                    self._activity.clear()
                    await self._wait_activity(hold)
                continue
            if free > 0:
                if self._fresh:  # no round trip to write first: start them before blocking
                    self._place_fresh()
                # until enqueue wakes us, a job ends, or a held-back job may run
                woken = await self._idle_wait(self._wait_ms)
            else:
                await self._wait_activity(1.0)  # every slot busy: until a job ends

    def _burst_done(self, free: int, remaining: int) -> bool:
        """A burst worker's end: its last fetch (it had free slots) found nothing ready,
        nothing runs and every outcome has been sent."""
        return free > 0 and remaining == 0 and not self.inflight and not self._acks

    def _max_jobs_done(self) -> bool:
        """A ``max_jobs`` worker's end: it leased its jobs and every outcome has been sent."""
        limit = self.settings.max_jobs
        return limit is not None and self._leased >= limit and not self.inflight and not self._acks

    async def _round_trip(self, fetch: bool) -> int:
        """``_exchange``, then ``kubeq_jobs_in_progress`` set from what is held after it; a
        round trip that fetched is timed for the refill (prefetch.py)."""
        sent = time.monotonic()
        try:
            return await self._exchange(fetch)
        finally:
            self._gauge_holding()
            if fetch:
                self._prefetch.round_trip(time.monotonic() - sent, self._leased)

    async def _exchange(self, fetch: bool) -> int:
        """Send queued outcomes and (if slots are free) a fetch, in one pipeline; returns the
        jobs still ready after the fetch."""
        acks, self._acks = self._acks, []
        self._activity.clear()
        self._count_settled()
        free = self._capacity() - len(self.inflight) if fetch else 0
        # one ack script call per queue for every job that ended since the last pass
        by_queue: dict[str, list[tuple[Delivery, Settlement]]] = {}
        for item in acks:
            by_queue.setdefault(item[0].job.queue.name, []).append(item)
        calls: list[ScriptCall] = []
        # a fetch after acks checks that they ran first (a resend after NOSCRIPT keeps order)
        self._round += 1
        order = f"{self._round}" if free > 0 and by_queue else ""
        for items in by_queue.values():
            q = items[0][0].job.queue
            args: list[Any] = [q.base, len(items)]
            for d, settlement in items:
                args += settlement.ack_fields(d.id, d.job.lease)
            if order:
                args += [self.settings.worker_id, order]
            calls.append((self._scripts.ack, q.script_keys, args))
        seq = 0
        if free > 0:
            seq = self._fetch_seq = self._fetch_seq + 1
            calls += self._router.calls(
                self._scripts.fetch,
                self.settings.worker_id,
                free,
                int(self.settings.lease_seconds * 1000),
                len(self.inflight),
                defaults.WORKER_TTL_MS,
                seq,
                order,
                set(by_queue),
            )
        if not calls:
            return 0
        if acks:
            self._warm()  # jobs ended: the next idle waits carry a fetch (wakefetch.py)
        self._sending = acks
        try:
            results = await run_pipeline_async(self._redis, calls, raise_errors=False)
        except BaseException:
            self._acks = acks + self._acks  # fenced and idempotent: safe to send again
            raise
        finally:
            self._sending = []
            if seq:  # read or given up on: its jobs leave the transit log (heartbeat.lua)
                self._answered = seq
        for items, flags in zip(by_queue.values(), results, strict=False):
            if isinstance(flags, BaseException) and rediscluster.is_outage(flags):
                # this queue's node was unreachable or its slot moving (Redis Cluster): the
                # outcomes were not recorded; fenced and idempotent, so send them again
                self._acks = items + self._acks
                log.warning("outcomes for %d jobs not recorded yet: %s", len(items), flags)
                continue
            handoffs = self._to_hand_off(items, flags)
            if handoffs:
                self._start_hand_off(items[0][0].job.queue, handoffs)
        self.vitals.round_trip()
        if free <= 0:
            return 0
        return self._take_fetch(results[len(by_queue) :])  # wakefetch.py

    def _hold_seconds(self) -> float:
        """How long the next round trip may wait: while the jobs leased and waiting here keep
        the slots busy for longer than a refill takes (``Prefetch.refill_at``), the
        acknowledgements can gather, for at most ``defaults.ACK_HOLD_MS`` after the first of
        them (0: go now)."""
        if self._waiting() <= self._prefetch.refill_at():
            return 0.0
        if not self._acks:
            return 1.0  # nothing to send; a job's end wakes the loop
        return self._acks_since + defaults.ACK_HOLD_MS / 1000 - time.monotonic()

    def _start(self, d: Delivery) -> None:
        if d.queued and self._start_direct(d):
            return  # a sync task's job run straight in the thread lane (direct.py)
        # the loop's own create_task: asyncio.create_task's wrapper names the task in Python
        d.runner = asyncio.get_running_loop().create_task(
            self._execute(d), name=f"kubeq-job-{d.id}"
        )

    def _start_waiting(self) -> None:
        """A slot came free: start the oldest prefetched job still ours on it. When the jobs
        turned out slower than the prefetch assumed, hand what waits back to the queue (no
        attempt counted) so that other workers can take it instead of it waiting here."""
        self._move_waiting()
        self._hand_back(self._stale())

    def _move_waiting(self) -> None:
        """Start the prefetched jobs, oldest first, while there is a slot (or room in the
        thread lane) for the oldest."""
        waiting, room = self._prefetch.waiting, None
        while waiting and not self._stopping:
            d = waiting[0][1]
            if d.settled:
                waiting.popleft()
            elif d.for_lane:  # to the thread lane, while it has room
                room = self._lane_room() if room is None else room
                if room <= 0:
                    break
                waiting.popleft()
                self._to_lane(d)
                room -= 1
            elif self._reserve(d):
                waiting.popleft()
                self._start(d)
            else:
                break

    async def _idle_wait(self, wait_ms: int = -1) -> int | None:
        """Nothing to fetch: block on the wake lists (woken by enqueue), or until ``wait_ms``,
        when a job held back for a time (delay, retry, rate limit) may run (idle.py); soon
        after a job, with a fetch behind the BLPOP (wakefetch.py): then returns the jobs
        still ready after that fetch (None: no fetch was made)."""
        try:
            if self._hot is None and (hot := self._hot_seconds(wait_ms)):
                self._arm_hot(hot)
            if self._hot is not None:
                return await self._hot_or_activity()
            await self._write_busy()
            for _ in range(await self._wakes.wait(self._activity, wait_ms)):
                self.vitals.round_trip()
        except REDIS_DOWN as exc:
            await self._redis_failed(exc)
        return None

    async def _script_failed(self, exc: ResponseError) -> None:
        """A script refused to run (e.g. a queue key of the wrong type): Redis answered, so
        this is no outage and a restart would not help; say so once, retry every second."""
        self.vitals.redis_up()
        self.vitals.round_trip()
        if str(exc) != self._script_error:
            self._script_error = str(exc)
            log.error("fetch refused by Redis (not an outage; fix what it names): %s", exc)
        await self._wait_activity(1.0)

    def _redis_up(self) -> None:
        self.vitals.redis_up()

    async def _redis_failed(self, exc: BaseException) -> None:
        """Count and log an outage, then wait out the backoff (a stop signal cuts it short)."""
        self.metrics.redis_errors.inc()
        url = urls.redact(urls.resolve_url(self.settings.redis_url))
        await self._wait_activity(self.vitals.redis_failed(exc, url))

    async def _execute(self, d: Delivery) -> None:
        d.entered = True
        started = time.monotonic()
        try:
            settlement = await tracing.traced(
                d,
                run_attempt(d, self.tasks, self.executor, self._redis_url),
            )
        except asyncio.CancelledError:
            if d.aborted and not d.settled:
                # the job ended 'aborted'; once the attempt has stopped (a thread that runs
                # on: when it returns), the ack tells ack.lua, which frees its slot
                if d.thread is not None:
                    await asyncio.shield(d.thread)
                settlement = Settlement(Outcome.REQUEUE)
            elif d.handed_back or d.aborted or d.lost:
                return  # _drain settled it, or it is no longer ours
            else:
                raise
        except Exception as exc:  # a bug of ours: never strand the job
            log.exception("job %s: worker error", d.id)
            error = f"{type(exc).__name__}: {exc}"
            settlement = Settlement.failed(error, f"worker error: {error}", traceback.format_exc())
        finally:
            if d.reserved:
                d.reserved = False
                self.executor.unreserve()
            took = d.ran_for(started, time.monotonic())  # None: it never began
            if took is not None:
                self._prefetch.observe(took)
            self._start_waiting()
            d.lane = None  # its run (the call, its context) is not kept with the outcome
        self._ran(d, settlement, took)
