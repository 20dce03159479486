"""The worker runtime: fetch, run, acknowledge, renew leases, drain on SIGTERM.

One asyncio loop owns all Redis traffic. Each pass sends the acknowledgements of every job
that ended since the last pass and, when slots are free, a fetch of up to that many jobs,
all in ONE pipelined round trip. When there is nothing to do it blocks on the queues' wake
lists (BLPOP, woken by enqueue) for at most a second, so it reacts at once without polling.

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

import redis.asyncio
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from . import connections, defaults, handoff, leases, rediscluster, tracing, workerinfo
from .app import Task
from .delivery import Delivery, run_attempt
from .execution import Executor, JobTimeout
from .fetchrouter import FetchRouter
from .health import Vitals
from .keys import QueueKeys, queues_key
from .metrics import WorkerMetrics, serve
from .options import TaskOptions
from .outcomes import AckFlag, Ended, Outcome, Settlement
from .prefetch import Prefetch
from .scripts import Call, Scripts, run_pipeline_async
from .settings import WorkerSettings, default_worker_id
from .wake import WakeWaits

log = logging.getLogger("kubeq.worker")

__all__ = ["Delivery", "JobTimeout", "Worker", "WorkerSettings", "default_worker_id"]

HANDBACK_SECONDS = defaults.HANDBACK_SECONDS

REDIS_DOWN = (RedisError, OSError, RedisClusterException)
"""Errors meaning Redis could not be reached or answer (a cluster's SlotNotCoveredError during
a failover is not even a RedisError)."""


class Worker:
    """A worker process's loop. ``asyncio.run(Worker(settings, tasks).run())``."""

    def __init__(self, settings: WorkerSettings, tasks: dict[str, Task[Any, Any]]) -> None:
        if settings.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {settings.concurrency}")
        if not settings.queues:
            raise ValueError("give at least one queue to consume (--queue NAME)")
        self.settings = settings
        self.tasks = tasks
        self.queues = [QueueKeys.of(q, settings.prefix) for q in settings.queues]
        self.metrics = WorkerMetrics()
        self.executor = Executor(settings.tasks_module, settings.concurrency, settings.pool)
        self.inflight: dict[tuple[str, str], Delivery] = {}
        """Every job leased to this worker: running, or waiting in ``_prefetch``."""
        self._prefetch: Prefetch[Delivery] = Prefetch(settings.concurrency, settings.prefetch_ms)
        self._running = 0
        self._acks_since = 0.0
        """When the oldest outcome in ``_acks`` was queued (monotonic)."""
        self._acks: list[tuple[Delivery, Settlement]] = []
        self._metric_children: dict[tuple[Any, ...], Any] = {}
        self._tally: dict[tuple[str, str, str], int] = {}
        """Jobs settled since the last round trip by (queue, task, outcome): added to the
        counter once per round trip, before their outcomes are sent (a lock per job less)."""
        self._holding: set[str] = set()
        """Queues whose in-progress gauge has been set (set again each round trip)."""
        self._redis_url = connections.resolve_url(settings.redis_url)
        self._activity = asyncio.Event()
        self._stopping = False
        self._force = asyncio.Event()
        self.vitals = Vitals()
        self._script_error: str | None = None
        self._wait_ms = -1
        """From the last fetch: ms until a job held back for a time may run (-1: none)."""
        # created here, connected on first use inside run()'s loop
        self._redis: redis.asyncio.Redis = connections.async_client(settings.redis_url)
        self._scripts = Scripts(self._redis)
        # one fetch call per hash slot on Redis Cluster, one over all queues elsewhere
        self._router = FetchRouter(self.queues, rediscluster.is_cluster(self._redis))
        self._wakes = WakeWaits(self._redis, self._router)
        self._handoffs: set[asyncio.Task[None]] = set()
        """Callback hand-offs under way (handoff.py), awaited before the worker leaves."""
        self.exit_code = 0

    def health(self) -> tuple[bool, str]:
        """(ok, message) for /healthz: fails when the worker has stopped consuming."""
        ok, message = self.vitals.health(self.settings.stall_seconds)
        if ok and (stuck := self.executor.health()) is not None:
            return False, stuck
        return ok, message if not ok else f"ok: {len(self.inflight)} jobs in flight"

    # -- lifecycle -----

    @property
    def stopping(self) -> bool:
        """True once a stop signal arrived: no new job is fetched."""
        return self._stopping

    def request_stop(self) -> None:
        """First call: drain. Second call: hand everything back now."""
        if self._stopping:
            log.warning("second stop signal: handing back %d jobs now", len(self.inflight))
            self._force.set()
        else:
            log.info(
                "stop signal: no new jobs; draining %d running jobs for up to %.0f s",
                len(self.inflight),
                self.settings.drain_timeout,
            )
            self._stopping = True
        self._activity.set()

    async def run(self) -> int:
        """Consume until stopped; returns the process exit code."""
        s = self.settings
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if s.handle_signals else ()
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        server = None
        if s.metrics_port:
            try:
                server = serve(self.metrics, self.health, s.metrics_port)
            except OSError as exc:  # e.g. two local worker processes on one port
                log.warning("no /metrics or /healthz: port %d: %s", s.metrics_port, exc)
        log.info(
            "worker %s consuming %s from %s with %d %s slots; tasks: %s",
            s.worker_id,
            ", ".join(s.queues),
            connections.redact(connections.resolve_url(s.redis_url)),
            s.concurrency,
            s.pool,
            ", ".join(sorted(self.tasks)),
        )
        beat = asyncio.create_task(self._heartbeat_loop(), name="kubeq-heartbeat")
        try:
            await self._register()
            await self._consume()
            await self._drain()
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            if self._handoffs:  # callbacks of the last acks: else the next worker's sweep
                await asyncio.wait(set(self._handoffs), timeout=5)
            await self._leave()
            self._wakes.stop()
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
        calls: list[Call] = [
            (self._scripts.leave, q.script_keys, [self.settings.worker_id]) for q in self.queues
        ]
        with contextlib.suppress(*REDIS_DOWN, TimeoutError):
            async with asyncio.timeout(2.0):  # if Redis is gone, its heartbeat just expires
                await run_pipeline_async(self._redis, calls)

    # -- the loop -----

    async def _consume(self) -> None:
        while not self._stopping:
            self.vitals.tick()
            try:
                remaining = await self._round_trip(fetch=True)
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
            if (free > 0 and remaining > 0) or self._acks:
                # work waits and we have room, or jobs ended: go round at once, unless enough
                # prefetched jobs wait here to batch the next round trip (prefetch.py)
                while (hold := self._hold_seconds()) > 0 and not self._stopping:
                    self._activity.clear()
                    await self._wait_activity(hold)
                continue
            if free > 0:
                # until enqueue wakes us, a job ends, or a held-back job may run
                await self._idle_wait(self._wait_ms)
            else:
                await self._wait_activity(1.0)  # every slot busy: until a job ends

    def _burst_done(self, free: int, remaining: int) -> bool:
        """A burst worker's end: its last fetch (it had free slots) found nothing ready,
        nothing runs and every outcome has been sent."""
        return free > 0 and remaining == 0 and not self.inflight and not self._acks

    async def _round_trip(self, fetch: bool) -> int:
        """``_exchange``, then ``kubeq_jobs_in_progress`` set from what is held after it."""
        try:
            return await self._exchange(fetch)
        finally:
            self._gauge_holding()

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
        calls: list[Call] = []
        for items in by_queue.values():
            q = items[0][0].job.queue
            args: list[Any] = [q.base, len(items)]
            for d, settlement in items:
                args += settlement.ack_fields(d.id, d.job.lease)
            calls.append((self._scripts.ack, q.script_keys, args))
        if free > 0:
            calls += self._router.calls(
                self._scripts.fetch,
                self.settings.worker_id,
                free,
                int(self.settings.lease_seconds * 1000),
                len(self.inflight),
                defaults.WORKER_TTL_MS,
            )
        if not calls:
            return 0
        try:
            results = await run_pipeline_async(self._redis, calls, raise_errors=False)
        except BaseException:
            self._acks = acks + self._acks  # fenced and idempotent: safe to send again
            raise
        for items, flags in zip(by_queue.values(), results, strict=False):
            if isinstance(flags, BaseException) and rediscluster.is_outage(flags):
                # this queue's node was unreachable or its slot moving (Redis Cluster): the
                # outcomes were not recorded; fenced and idempotent, so send them again
                self._acks = items + self._acks
                log.warning("outcomes for %d jobs not recorded yet: %s", len(items), flags)
                continue
            handoffs = [
                d.id
                for i, (d, _) in enumerate(items)
                if AckFlag.report(d.id, flags if isinstance(flags, Exception) else flags[i])
            ]
            if handoffs:
                self._start_hand_off(items[0][0].job.queue, handoffs)
        self.vitals.round_trip()
        if free <= 0:
            return 0
        reply, error = self._router.merge(results[len(by_queue) :])
        if error is not None and not reply.jobs:
            raise error
        self._wait_ms = reply.wait_ms
        now_ms = time.time() * 1000
        for job in reply.jobs:
            running = self.inflight.get((job.queue.name, job.id))
            if running is not None and not running.settled:
                # Our own running job came back: its lease expired before a (late) heartbeat
                # renewed it, and this fetch reclaimed it. Adopt the new lease for the run in
                # progress instead of starting a second run of the same job.
                log.warning(
                    "job %s: lease expired while it ran here (late heartbeat); "
                    "re-delivered to this worker, which keeps running it under the new lease",
                    job.id,
                )
                running.job = job
                running.lost = False
                continue
            d = Delivery(job)
            self.inflight[d.key] = d
            self._metric(self.metrics.wait, job.queue.name).observe(
                max(0.0, (now_ms - job.ready_at_ms) / 1000)
            )
            if self._running < self.settings.concurrency:
                self._start(d)
            else:
                self._prefetch.hold(d)
        if error is not None:  # the jobs other slots' fetches leased run; this one is retried
            raise error
        return reply.remaining

    def _hold_seconds(self) -> float:
        """How long the next round trip may wait: while more than half the prefetch room is
        still leased and waiting here, slots have work and the acknowledgements can gather,
        for at most ``defaults.ACK_HOLD_MS`` after the first of them (0: go now)."""
        if len(self._prefetch.waiting) <= self._prefetch.room() // 2:
            return 0.0
        if not self._acks:
            return 1.0  # nothing to send; a job's end wakes the loop
        return self._acks_since + defaults.ACK_HOLD_MS / 1000 - time.monotonic()

    def _capacity(self) -> int:
        """Jobs this worker may hold: its slots, plus the prefetch room (prefetch.py)."""
        return self.settings.concurrency + self._prefetch.room()

    def _start(self, d: Delivery) -> None:
        self._running += 1
        d.runner = asyncio.create_task(self._execute(d), name=f"kubeq-job-{d.id}")

    def _start_waiting(self) -> None:
        """A slot came free: start the oldest prefetched job still ours. When the jobs turned
        out slower than the prefetch assumed, hand what waits back to the queue (no attempt
        counted) so that other workers can take it instead of it waiting here."""
        while self._running < self.settings.concurrency and not self._stopping:
            d = self._prefetch.take()
            if d is None:
                break
            if not d.settled:
                self._start(d)
        self._hand_back(self._prefetch.stale())

    def _hand_back(self, unstarted: list[Delivery]) -> None:
        """Requeue leased jobs that never started: no attempt counted."""
        for d in unstarted:
            if not d.settled:
                d.handed_back = True
                self._settle(d, Settlement(Outcome.REQUEUE))

    def _count_settled(self) -> None:
        """Add the jobs settled since the last call to ``kubeq_jobs_total``."""
        tally, self._tally = self._tally, {}
        for labels, n in tally.items():
            self._metric(self.metrics.jobs, *labels).inc(n)

    def _gauge_holding(self) -> None:
        """Set ``kubeq_jobs_in_progress`` per queue from what is in flight now."""
        held: dict[str, int] = dict.fromkeys(self._holding, 0)
        for queue, _ in self.inflight:
            held[queue] = held.get(queue, 0) + 1
        for queue, n in held.items():
            self._metric(self.metrics.in_progress, queue).set(n)
        self._holding = set(held)

    async def _idle_wait(self, wait_ms: int = -1) -> None:
        """Nothing to fetch: block on the wake lists (woken by enqueue), or until ``wait_ms``,
        when a job held back for a time (delay, retry, rate limit) may run (wake.py)."""
        try:
            for _ in range(await self._wakes.wait(self._activity, wait_ms)):
                self.vitals.round_trip()
        except REDIS_DOWN as exc:
            await self._redis_failed(exc)

    async def _wait_activity(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._activity.wait(), timeout)

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
        url = connections.redact(connections.resolve_url(self.settings.redis_url))
        await self._wait_activity(self.vitals.redis_failed(exc, url))

    # -- one job -----

    async def _execute(self, d: Delivery) -> None:
        started = time.monotonic()
        try:
            settlement = await tracing.traced(
                d,
                run_attempt(d, self.tasks, self.executor, self._redis_url),
            )
        except asyncio.CancelledError:
            if d.handed_back or d.aborted:
                return  # _drain settles it, or abort.lua did
            raise
        except Exception as exc:  # a bug of ours: never strand the job
            log.exception("job %s: worker error", d.id)
            error = f"{type(exc).__name__}: {exc}"
            settlement = Settlement.failed(error, f"worker error: {error}", traceback.format_exc())
        finally:
            self._running -= 1
            took = time.monotonic() - started
            self._prefetch.observe(took)
            self._start_waiting()
        if d.settled:
            return
        self._metric(self.metrics.duration, d.job.queue.name, d.task_name).observe(took)
        self._settle(d, settlement)

    def _metric(self, family: Any, *labels: str) -> Any:
        """A labelled child of a metric family, looked up once (labels() is not cheap)."""
        key = (id(family), *labels)
        child = self._metric_children.get(key)
        if child is None:
            child = self._metric_children[key] = family.labels(*labels)
        return child

    def _count(self, d: Delivery, label: str) -> None:
        key = (d.job.queue.name, d.task_name, label)
        self._tally[key] = self._tally.get(key, 0) + 1

    def _settle(self, d: Delivery, settlement: Settlement) -> None:
        d.settled = True
        self.inflight.pop(d.key, None)
        if d.lost:
            log.warning("job %s: result discarded, its lease was taken over", d.id)
        self._count(d, settlement.outcome.metric_label)
        if not self._acks:
            self._acks_since = time.monotonic()
        self._acks.append((d, settlement))
        self._activity.set()

    # -- workflows -----

    def _defaults_for(self, name: str) -> TaskOptions:
        task = self.tasks.get(name)
        return task.options if task is not None else TaskOptions()

    def _start_hand_off(self, queue: QueueKeys, ids: list[str]) -> None:
        """Enqueue the callbacks of jobs just ended, beside the loop (handoff.py)."""
        runner = asyncio.create_task(self._hand_off(queue, ids), name="kubeq-handoff")
        self._handoffs.add(runner)
        runner.add_done_callback(self._handoffs.discard)

    async def _hand_off(self, queue: QueueKeys, ids: list[str]) -> None:
        try:
            await handoff.hand_off(self._redis, queue, ids, self._defaults_for)
        except (RedisError, OSError) as exc:
            log.warning("callbacks of %s not handed off yet (a later sweep will): %s", ids, exc)

    # -- leases -----

    async def _heartbeat_loop(self) -> None:
        failing = False
        started_at = time.time()
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            try:
                await self._heartbeat()
            except REDIS_DOWN as exc:
                if not failing:
                    log.warning("heartbeat failed (leases are not being renewed): %s", exc)
                failing = True
                continue
            if failing:
                log.info("heartbeat restored")
            failing = False
            self.vitals.round_trip()
            # the dashboard's Workers page (issue 14); logs and never raises
            await workerinfo.publish_worker(self, self._redis, started_at)
            try:  # callbacks a dead worker acked but never handed off
                await handoff.sweep(self._redis, self.queues, self._defaults_for)
            except (RedisError, OSError) as exc:
                log.warning("callback sweep failed: %s", exc)

    async def _heartbeat(self) -> None:
        self._hand_back(self._prefetch.stale())  # slots busy with long jobs: let others run these
        aborted = await leases.renew(
            self._redis, self._scripts.heartbeat, self.queues, self.settings, self.inflight
        )
        for d in aborted:
            self._abort(d)

    def _abort(self, d: Delivery) -> None:
        """The job was aborted (abort.lua recorded its end): stop the attempt. An async task
        is cancelled, a process child killed; a thread task sees current_job().aborted and
        its thread is counted as abandoned until it returns."""
        log.warning("job %s (%s): aborted; stopping its attempt", d.id, d.task_name)
        d.aborted = True
        d.settled = True
        self.inflight.pop(d.key, None)
        if d.context is not None:
            d.context.abort()
        if d.runner is not None:
            d.runner.cancel()
        self._count(d, Ended.ABORTED.value)
        self._activity.set()

    # -- shutdown -----

    async def _drain(self) -> None:
        """Finish running jobs within drain_timeout, hand back the rest, flush every ack."""
        deadline = time.monotonic() + self.settings.drain_timeout
        self._hand_back(self._prefetch.drop_all())  # never started: back to the queue at once
        force = asyncio.create_task(self._force.wait())
        while self.inflight and not self._force.is_set():
            runners = {
                d.runner
                for d in self.inflight.values()
                if d.runner is not None and not d.runner.done()
            }
            left = deadline - time.monotonic()
            if left <= 0 or not runners:
                break
            await asyncio.wait({*runners, force}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            await self._flush()
        force.cancel()
        leftover = [d for d in self.inflight.values() if not d.settled]
        if leftover:
            log.warning("handing back %d unfinished jobs to their queues", len(leftover))
        for d in leftover:
            d.handed_back = True
            if d.runner is not None:
                d.runner.cancel()
            self._settle(d, Settlement(Outcome.REQUEUE))
        # The hand-back gets HANDBACK_SECONDS in all (the pod's grace period is the drain
        # timeout plus a margin), and a second signal cuts it short.
        give_up = time.monotonic() + HANDBACK_SECONDS
        tries = 0
        while self._acks and time.monotonic() < give_up and not (tries and self._force.is_set()):
            tries += 1
            try:
                async with asyncio.timeout(max(0.1, give_up - time.monotonic())):
                    await self._round_trip(fetch=False)
            except (*REDIS_DOWN, TimeoutError) as exc:
                log.error("could not hand back jobs (%s); retrying", exc or "timed out")
                await self._wait_activity(0.5)
        if self._acks:
            log.error(
                "%d outcomes not recorded: those jobs run again when their lease expires",
                len(self._acks),
            )

    async def _flush(self) -> None:
        with contextlib.suppress(*REDIS_DOWN):
            await self._round_trip(fetch=False)
