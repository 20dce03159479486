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
import concurrent.futures
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import time
import traceback
import uuid
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio
from redis.exceptions import RedisError

from . import connections, serialization
from .app import Task
from .errors import Retry
from .keys import DEFAULT_PREFIX, QueueKeys, queues_key
from .metrics import WorkerMetrics, serve
from .registry import run_in_child
from .retry import RetryPolicy
from .scripts import Call, Scripts, run_pipeline_async
from .stats import WORKER_TTL_MS

log = logging.getLogger("kubeq.worker")


HANDBACK_SECONDS = 3.0
"""Time allowed, after the drain, to record the outcomes and hand-backs: the 25 s default
drain plus this stays below Kubernetes' 30 s default grace period."""


class JobTimeout(Exception):
    """An execution ran past its timeout."""


@dataclass
class WorkerSettings:
    """How one worker process runs. Defaults suit a pod with the default 30 s grace."""

    tasks_module: str
    queues: list[str]
    """Queues to consume, in priority order: a queue is served only when those before it
    have nothing ready."""
    concurrency: int = 4
    """Jobs this process runs at once; also how many it fetches (prefetch = free slots)."""
    pool: str = "thread"
    """Where sync tasks run: "thread" (default), "process" (CPU-bound) or "async" (same as
    thread for sync tasks; async tasks always run on the event loop)."""
    redis_url: str | None = None
    prefix: str = DEFAULT_PREFIX
    lease_seconds: float = 30.0
    """A job whose worker stops renewing its lease for this long is delivered again."""
    drain_timeout: float = 25.0
    """Seconds running jobs get to finish after SIGTERM before they are handed back."""
    metrics_port: int | None = None
    stall_seconds: float = 60.0
    """/healthz fails when the loop has not completed a round trip to Redis for this long."""
    worker_id: str = field(default_factory=lambda: default_worker_id())  # noqa: PLW0108 - defined below

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats: often enough for several renewals per lease, and
        for the operator to see busy/idle state change within a couple of seconds."""
        return max(0.1, min(2.0, self.lease_seconds / 4))


def default_worker_id() -> str:
    """``<pod or host name>:<pid>:<random>``; the operator maps workers to pods by the name."""
    host = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Delivery:
    """One job leased to this worker."""

    queue: QueueKeys
    id: str
    lease: str
    payload: bytes
    attempts: int
    ready_at_ms: int
    deliveries: int
    task_name: str = "?"
    runner: asyncio.Task[None] | None = None
    settled: bool = False
    """An acknowledgement has been queued; nothing else may settle this delivery."""
    lost: bool = False
    """The lease was taken over by another worker; our outcome will be refused."""
    handed_back: bool = False
    """Cancelled by the drain to be re-queued (any other cancellation is a failure)."""


@dataclass
class _ThreadRun:
    """One sync task handed to the thread pool; its fields change only on the event loop."""

    started: asyncio.Future[None]
    returned: bool = False
    abandoned: bool = False

    def mark_started(self) -> None:
        if not self.started.done():
            self.started.set_result(None)


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
        self.inflight: dict[tuple[str, str], Delivery] = {}
        self._acks: list[tuple[Delivery, list[Any]]] = []
        self._metric_children: dict[tuple[Any, ...], Any] = {}
        self._activity = asyncio.Event()
        self._stopping = False
        self._force = asyncio.Event()
        self._thread_count = settings.concurrency * 2
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._thread_count, thread_name_prefix="kubeq-task"
        )
        self._abandoned = 0
        """Threads still running a task whose attempt timed out (Python cannot kill them)."""
        self._processes: concurrent.futures.ProcessPoolExecutor | None = None
        self._wake_wait: asyncio.Task[Any] | None = None
        self._last_round_trip = time.monotonic()
        self._last_tick = time.monotonic()
        self._redis_down_since: float | None = None
        self._backoff = 0.1
        self._redis: redis.asyncio.Redis | None = None
        self._scripts: Scripts | None = None
        self.exit_code = 0

    # -- health -----

    def health(self) -> tuple[bool, str]:
        """(ok, message) for /healthz: fails when the worker has stopped consuming."""
        now = time.monotonic()
        stall = self.settings.stall_seconds
        if now - self._last_tick > stall:
            return False, f"worker loop stalled: no pass for {now - self._last_tick:.0f} s"
        if self._redis_down_since is not None and now - self._redis_down_since > stall:
            return False, f"cannot reach Redis for {now - self._redis_down_since:.0f} s"
        if now - self._last_round_trip > stall:
            return False, f"no round trip to Redis for {now - self._last_round_trip:.0f} s"
        if self._abandoned >= self._thread_count:
            return False, (
                f"all {self._thread_count} task threads are stuck in tasks that timed out"
            )
        return True, f"ok: {len(self.inflight)} jobs in flight"

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
        self._redis = connections.async_client(s.redis_url)
        self._scripts = Scripts(self._redis)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
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
            await self._leave()
            if self._wake_wait is not None:
                self._wake_wait.cancel()
            await self._redis.aclose()
            if server is not None:
                server.shutdown()
            self._threads.shutdown(wait=False, cancel_futures=True)
            if self._processes is not None:
                children = list(getattr(self._processes, "_processes", {}).values())
                self._processes.shutdown(wait=False, cancel_futures=True)
                for child in children:  # a child still running a handed-back job
                    child.terminate()
        log.info("worker %s stopped", s.worker_id)
        return self.exit_code

    async def _register(self) -> None:
        while not self._stopping:
            try:
                assert self._redis is not None
                await self._redis.sadd(queues_key(self.settings.prefix), *self.settings.queues)
                self._redis_up()
                return
            except (RedisError, OSError) as exc:
                await self._redis_failed(exc)

    async def _leave(self) -> None:
        assert self._redis is not None and self._scripts is not None
        calls: list[Call] = [
            (self._scripts.leave, q.script_keys, [self.settings.worker_id]) for q in self.queues
        ]
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(2.0):  # if Redis is gone, its heartbeat just expires
                await run_pipeline_async(self._redis, calls)

    # -- the loop -----

    async def _consume(self) -> None:
        while not self._stopping:
            self._last_tick = time.monotonic()
            try:
                _, remaining = await self._round_trip(fetch=True)
                self._redis_up()
            except (RedisError, OSError) as exc:
                await self._redis_failed(exc)
                continue
            if self.stopping:
                break
            free = self.settings.concurrency - len(self.inflight)
            if (free > 0 and remaining > 0) or self._acks:
                continue  # work waits and we have room, or jobs ended: go round at once
            if free > 0:
                await self._idle_wait()  # until enqueue wakes us or a job ends
            else:
                await self._wait_activity(1.0)  # every slot busy: until a job ends

    async def _round_trip(self, fetch: bool) -> tuple[int, int]:
        """Send queued acks and (if slots are free) a fetch, in one pipeline."""
        assert self._redis is not None and self._scripts is not None
        acks, self._acks = self._acks, []
        self._activity.clear()
        free = self.settings.concurrency - len(self.inflight) if fetch else 0
        # one ack script call per queue for every job that ended since the last pass
        by_queue: dict[str, list[tuple[Delivery, list[Any]]]] = {}
        for item in acks:
            by_queue.setdefault(item[0].queue.name, []).append(item)
        calls: list[Call] = []
        for items in by_queue.values():
            q = items[0][0].queue
            args: list[Any] = [q.base, len(items)]
            for _, fields in items:
                args += fields
            calls.append((self._scripts.ack, q.script_keys, args))
        if free > 0:
            calls.append(self._fetch_call(free))
        if not calls:
            return 0, 0
        try:
            results = await run_pipeline_async(self._redis, calls, raise_errors=False)
        except BaseException:
            self._acks = acks + self._acks  # fenced and idempotent: safe to send again
            raise
        outcomes: list[tuple[Delivery, Any]] = []
        for items, flags in zip(by_queue.values(), results, strict=False):
            for i, (delivery, _) in enumerate(items):
                outcomes.append((delivery, flags if isinstance(flags, Exception) else flags[i]))
        for delivery, applied in outcomes:
            if isinstance(applied, Exception) or applied == -1:
                # a script error, not an outage: resending would fail the same way; the
                # lease expires and the job is delivered again
                log.error("job %s: could not record its outcome: %s", delivery.id, applied)
            elif not applied:
                log.warning(
                    "job %s: outcome refused, its lease was taken over by another worker",
                    delivery.id,
                )
        self._last_round_trip = time.monotonic()
        if free <= 0:
            return 0, 0
        fetched = results[-1]
        if isinstance(fetched, Exception):
            raise fetched
        return self._start(fetched), int(fetched[0])

    def _fetch_call(self, want: int) -> Call:
        assert self._scripts is not None
        s = self.settings
        keys = [k for q in self.queues for k in q.script_keys]
        args: list[Any] = [
            s.worker_id,
            want,
            int(s.lease_seconds * 1000),
            len(self.inflight),
            WORKER_TTL_MS,
            len(self.queues),
            *(q.base for q in self.queues),
        ]
        return (self._scripts.fetch, keys, args)

    def _start(self, raw: list[Any]) -> int:
        now_ms = time.time() * 1000
        count = 0
        for i in range(1, len(raw), 7):
            qi, job_id, lease, payload, attempts, ready_at, deliveries = raw[i : i + 7]
            queue = self.queues[int(qi)]
            d = Delivery(
                queue=queue,
                id=job_id.decode(),
                lease=str(int(lease)),
                payload=payload,
                attempts=int(attempts),
                ready_at_ms=int(ready_at),
                deliveries=int(deliveries),
            )
            self.inflight[(queue.name, d.id)] = d
            self._metric(self.metrics.in_progress, queue.name).inc()
            self._metric(self.metrics.wait, queue.name).observe(
                max(0.0, (now_ms - d.ready_at_ms) / 1000)
            )
            d.runner = asyncio.create_task(self._execute(d), name=f"kubeq-job-{d.id}")
            count += 1
        return count

    async def _idle_wait(self) -> None:
        """Nothing to fetch: block on the wake lists (woken by enqueue) for up to 1 s."""
        assert self._redis is not None
        if self._wake_wait is None or self._wake_wait.done():
            if self._wake_wait is not None:
                with contextlib.suppress(BaseException):
                    self._wake_wait.result()
            keys = [q.wake for q in self.queues]
            self._wake_wait = asyncio.create_task(self._blpop(keys))
        activity = asyncio.create_task(self._activity.wait())
        try:
            await asyncio.wait(
                {self._wake_wait, activity}, timeout=2.0, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            activity.cancel()
        if self._wake_wait.done():
            try:
                self._wake_wait.result()
                self._last_round_trip = time.monotonic()
            except (RedisError, OSError) as exc:
                self._wake_wait = None
                await self._redis_failed(exc)

    async def _blpop(self, keys: list[str]) -> Any:
        assert self._redis is not None
        return await self._redis.blpop(keys, timeout=1)

    async def _wait_activity(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._activity.wait(), timeout)

    # -- Redis outages -------------------------------------------------------------------------

    def _redis_up(self) -> None:
        if self._redis_down_since is not None:
            log.warning(
                "Redis is reachable again after %.1f s; consuming",
                time.monotonic() - self._redis_down_since,
            )
            self._redis_down_since = None
        self._backoff = 0.1

    async def _redis_failed(self, exc: BaseException) -> None:
        self.metrics.redis_errors.inc()
        now = time.monotonic()
        if self._redis_down_since is None:
            self._redis_down_since = now
            self._backoff = 0.1
        url = connections.redact(connections.resolve_url(self.settings.redis_url))
        log.error(
            "Redis unreachable at %s (%s: %s); down for %.1f s, retrying in %.1f s",
            url,
            type(exc).__name__,
            exc,
            now - self._redis_down_since,
            self._backoff,
        )
        await self._wait_activity(self._backoff)
        self._backoff = min(5.0, self._backoff * 2)

    # -- running one job -----

    async def _execute(self, d: Delivery) -> None:
        started = time.monotonic()
        try:
            outcome = await self._run(d)
        except asyncio.CancelledError:
            if d.handed_back:
                return  # _drain settles it
            raise
        except Exception as exc:  # a bug of ours or a task's bad Retry/retry_on: never strand it
            log.exception("job %s: worker error", d.id)
            error = f"{type(exc).__name__}: {exc}"
            outcome = ("failed", error, traceback.format_exc(), f"worker error: {error}", "0")
        finally:
            self._metric(self.metrics.in_progress, d.queue.name).dec()
        if d.settled:
            return
        self._metric(self.metrics.duration, d.queue.name, d.task_name).observe(
            time.monotonic() - started
        )
        self._settle(d, *outcome)

    def _metric(self, family: Any, *labels: str) -> Any:
        """A labelled child of a metric family, looked up once (labels() is not cheap)."""
        key = (id(family), *labels)
        child = self._metric_children.get(key)
        if child is None:
            child = self._metric_children[key] = family.labels(*labels)
        return child

    def _settle(
        self,
        d: Delivery,
        outcome: str,
        value: bytes | str = b"",
        tb: str = "",
        reason: str = "",
        retry_due: str = "0",
    ) -> None:
        assert self._scripts is not None
        d.settled = True
        self.inflight.pop((d.queue.name, d.id), None)
        if d.lost:
            log.warning("job %s: result discarded, its lease was taken over", d.id)
        label = {"retry": "retried", "requeue": "requeued", "release": "released"}.get(
            outcome, outcome
        )
        self._metric(self.metrics.jobs, d.queue.name, d.task_name, label).inc()
        self._acks.append((d, [d.id, d.lease, outcome, value, tb, reason, retry_due]))
        self._activity.set()

    async def _run(self, d: Delivery) -> tuple[str, bytes | str, str, str, str]:
        """Run the job; returns the ack (outcome, value, traceback, reason, retry due)."""
        try:
            name, args, kwargs, options = serialization.decode_call(d.payload)
        except ValueError as exc:
            log.error("job %s dead-lettered: %s", d.id, exc)
            return "failed", str(exc), "", str(exc), "0"
        d.task_name = name
        task = self.tasks.get(name)
        if task is None:
            reason = (
                f"unknown task {name!r}: this worker runs only the tasks registered by module "
                f"{self.settings.tasks_module!r} ({', '.join(sorted(self.tasks))})"
            )
            log.error("job %s dead-lettered: %s", d.id, reason)
            return "failed", reason, "", reason, "0"
        try:
            policy = _policy(task.options.retry, options)
            timeout = options.get("timeout", task.options.timeout)
        except (TypeError, ValueError) as exc:
            reason = f"malformed payload: bad options ({exc})"
            return "failed", reason, "", reason, "0"
        attempt = d.attempts + 1
        try:
            result = await self._invoke(task, args, kwargs, timeout)
            try:
                encoded = serialization.dumps(result)
            except TypeError as exc:
                raise TypeError(
                    f"task {name!r} returned a {type(result).__name__}, which is not "
                    f"JSON-serializable ({exc}); return JSON types"
                ) from None
            return "finished", encoded, "", "", "0"
        except asyncio.CancelledError:
            if d.handed_back:
                raise
            # a task's own cancellation (an inner task it awaited was cancelled) is a failure
            error, tb = "CancelledError: the task was cancelled", traceback.format_exc()
            return "failed", error, tb, f"{error} (not retried)", "0"
        except BrokenProcessPool as exc:
            # a pool child died (maybe of another job): no attempt counted, a lost delivery
            error = f"BrokenProcessPool: {exc}"
            log.error("job %s (%s): its process died; released to run again", d.id, name)
            return "release", error, traceback.format_exc(), "", "0"
        except Retry as exc:
            error, tb = f"Retry: {exc}", traceback.format_exc()
            if attempt < policy.max_attempts:
                delay = exc.delay if exc.delay is not None else policy.delay(attempt)
                log.info("job %s (%s) retry %d in %.1f s", d.id, name, attempt, delay)
                return "retry", error, tb, "", f"+{int(delay * 1000)}"
            reason = f"retry requested on the last attempt ({attempt} of {policy.max_attempts})"
            return "failed", error, tb, reason, "0"
        except BaseException as exc:  # a task's SystemExit must not stop the worker
            error, tb = f"{type(exc).__name__}: {exc}", traceback.format_exc()
            if isinstance(exc, Exception) and policy.should_retry(attempt, exc):
                delay = policy.delay(attempt)
                log.warning(
                    "job %s (%s) attempt %d failed, retry in %.1f s: %s",
                    d.id,
                    name,
                    attempt,
                    delay,
                    error,
                )
                return "retry", error, tb, "", f"+{int(delay * 1000)}"
            if attempt >= policy.max_attempts:
                reason = f"failed {attempt} of {policy.max_attempts} attempts: {error}"
            else:
                reason = f"{type(exc).__name__} is not retried by this task: {error}"
            log.error("job %s (%s) dead-lettered: %s", d.id, name, reason)
            return "failed", error, tb, reason, "0"

    async def _invoke(
        self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any], timeout: Any
    ) -> Any:
        loop = asyncio.get_running_loop()
        run: _ThreadRun | None = None
        pool: concurrent.futures.ProcessPoolExecutor | None = None
        if task.is_async:
            work: Any = task.func(*args, **kwargs)
        elif (task.options.pool or self.settings.pool) == "process":
            pool = self._process_pool()
            work = loop.run_in_executor(
                pool, run_in_child, self.settings.tasks_module, task.name, args, kwargs
            )
        else:
            run = _ThreadRun(loop.create_future())
            work = loop.run_in_executor(
                self._threads, self._in_thread, loop, run, task.func, args, kwargs
            )
        try:
            if timeout is None:
                return await work
            if run is not None:
                # the clock starts when a thread picks the job up, not while it queues
                await asyncio.wait({run.started, work}, return_when=asyncio.FIRST_COMPLETED)
            return await asyncio.wait_for(work, float(timeout))
        except TimeoutError:
            if run is not None and not run.returned:
                run.abandoned = True  # its thread runs on: counted until it returns
                self._abandoned += 1
                log.warning(
                    "%s: a timed-out task still occupies a thread (%d of %d threads so)",
                    task.name,
                    self._abandoned,
                    self._thread_count,
                )
            raise JobTimeout(f"ran longer than its timeout of {timeout} s") from None
        except BrokenProcessPool:
            if pool is not None and self._processes is pool:
                self._processes = None  # a child died: the next job gets a fresh pool
                pool.shutdown(wait=False, cancel_futures=True)
            raise

    def _in_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        run: _ThreadRun,
        func: Any,
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run a sync task in a pool thread, telling the loop when it starts and ends."""
        loop.call_soon_threadsafe(run.mark_started)
        try:
            return func(*args, **kwargs)
        finally:
            loop.call_soon_threadsafe(self._thread_returned, run)

    def _thread_returned(self, run: _ThreadRun) -> None:
        run.returned = True
        if run.abandoned:
            self._abandoned -= 1

    def _process_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._processes is None:
            self._processes = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.settings.concurrency,
                mp_context=multiprocessing.get_context("spawn"),
            )
        return self._processes

    # -- leases -----

    async def _heartbeat_loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            try:
                await self._heartbeat()
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("heartbeat failed (leases are not being renewed): %s", exc)
                failing = True
                continue
            if failing:
                log.info("heartbeat restored")
            failing = False
            self._last_round_trip = time.monotonic()

    async def _heartbeat(self) -> None:
        assert self._redis is not None and self._scripts is not None
        s = self.settings
        busy = len(self.inflight)
        calls: list[Call] = []
        for q in self.queues:
            pairs = [
                x
                for d in self.inflight.values()
                if d.queue is q and not d.settled
                for x in (d.id, d.lease)
            ]
            args = [q.base, s.worker_id, busy, int(s.lease_seconds * 1000), *pairs]
            calls.append((self._scripts.heartbeat, q.script_keys, args))
        for q, lost in zip(self.queues, await run_pipeline_async(self._redis, calls), strict=True):
            for job_id in lost:
                d = self.inflight.get((q.name, job_id.decode()))
                if d is not None and not d.lost and not d.settled:
                    d.lost = True
                    log.warning(
                        "job %s: lease lost (this worker was too slow to renew it); "
                        "another worker runs it now and this run's outcome will be refused",
                        d.id,
                    )

    # -- shutdown -----

    async def _drain(self) -> None:
        """Finish running jobs within drain_timeout, hand back the rest, flush every ack."""
        deadline = time.monotonic() + self.settings.drain_timeout
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
            self._settle(d, "requeue")
        # The hand-back gets HANDBACK_SECONDS in all (the pod's grace period is the drain
        # timeout plus a margin), and a second signal cuts it short.
        give_up = time.monotonic() + HANDBACK_SECONDS
        tries = 0
        while self._acks and time.monotonic() < give_up and not (tries and self._force.is_set()):
            tries += 1
            try:
                async with asyncio.timeout(max(0.1, give_up - time.monotonic())):
                    await self._round_trip(fetch=False)
            except (RedisError, OSError, TimeoutError) as exc:
                log.error("could not hand back jobs (%s); retrying", exc or "timed out")
                await self._wait_activity(0.5)
        if self._acks:
            log.error(
                "%d outcomes not recorded: those jobs run again when their lease expires",
                len(self._acks),
            )

    async def _flush(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._round_trip(fetch=False)


def _policy(base: RetryPolicy, options: dict[str, Any]) -> RetryPolicy:
    """The task's retry policy with the per-call overrides of the payload applied."""
    names = ("max_attempts", "backoff_min", "backoff_max")
    changes = {n: options[n] for n in names if n in options}
    if not changes:
        return base
    return dataclasses.replace(base, **changes)
