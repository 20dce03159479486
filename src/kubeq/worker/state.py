"""A worker's state and the small steps every part of its loop shares: counting and
settling a job, handing unstarted jobs back, the stop request and the health answer.

``Worker`` (loop.py) is this state, the upkeep beside the loop (upkeep.py: heartbeat,
hand-off, drain) and the loop itself, each a class on top of the one before.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import redis.asyncio
from redis.exceptions import RedisClusterException, RedisError

from kubeq import defaults, serialization
from kubeq.client.tasks import Task
from kubeq.options import TaskOptions
from kubeq.outcomes import AckFlag, Ended, Outcome, Settlement
from kubeq.store import cluster as rediscluster
from kubeq.store import connections, urls, versions
from kubeq.store.keys import QueueKeys, pin_of
from kubeq.store.partitions import Partitioner
from kubeq.store.scripts import Scripts
from kubeq.worker.delivery import Delivery
from kubeq.worker.execution import Executor
from kubeq.worker.fetch import FetchRouter
from kubeq.worker.health import Vitals
from kubeq.worker.idle import WakeWaits
from kubeq.worker.prefetch import Prefetch
from kubeq.worker.settings import WorkerSettings
from kubeq.worker.tally import UNSERVED, JobCounts, Unserved, add

if TYPE_CHECKING:
    from kubeq.worker.metrics import WorkerMetrics

log = logging.getLogger("kubeq.worker")

HANDBACK_SECONDS = defaults.HANDBACK_SECONDS

REDIS_DOWN = (RedisError, OSError, RedisClusterException)
"""Errors meaning Redis could not be reached or answer (a cluster's SlotNotCoveredError during
a failover is not even a RedisError)."""


class WorkerState:
    """What one worker process holds: its settings, tasks, leased jobs and clients."""

    def __init__(self, settings: WorkerSettings, tasks: dict[str, Task[Any, Any]]) -> None:
        if settings.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {settings.concurrency}")
        if not settings.queues:
            raise ValueError("give at least one queue to consume (--queue NAME)")
        self.settings = settings
        self.tasks = tasks
        self.queues = [
            QueueKeys.of(q, settings.prefix)
            for q in versions.worker_queues(settings.queues, settings.version)
        ]
        """Its queues, each after its version's pinned queue (kubeq.store.versions)."""
        self.metrics: WorkerMetrics | Unserved = UNSERVED
        if settings.metrics_port:  # the Prometheus client only where /metrics is served
            from kubeq.worker.metrics import WorkerMetrics  # noqa: PLC0415 - see tally.py

            self.metrics = WorkerMetrics()
        self._timed = self.metrics is not UNSERVED
        """Whether jobs' waits and durations are observed (only ``/metrics`` shows them)."""
        self.settled: JobCounts = {}
        """Jobs settled by queue and outcome, for the worker's document (info.py)."""
        self.executor = Executor(settings.tasks_module, settings.concurrency, settings.pool)
        self.inflight: dict[tuple[str, str], Delivery] = {}
        """Every job leased to this worker: running, or waiting for a slot (in ``_prefetch``,
        or queued in the executor's thread lane, ``_queued``)."""
        self._prefetch: Prefetch[Delivery] = Prefetch(settings.concurrency, settings.prefetch_ms)
        self._fresh: list[Delivery] = []
        """Jobs the last fetch leased, not placed yet (``_place_fresh``)."""
        self._placing: asyncio.Handle | None = None
        """``_place_fresh`` scheduled after a fetch (cancelled when it runs earlier)."""
        self._queued: collections.deque[tuple[float, Delivery]] = collections.deque()
        """Sync jobs handed to the thread lane before a slot was free, with when, oldest first
        (those that began or ended are dropped as they are met)."""
        self._leased = 0
        """Jobs leased in this worker's life (``settings.max_jobs`` bounds it)."""
        self._acks_since = 0.0
        """When the oldest outcome in ``_acks`` was queued (monotonic)."""
        self._acks: list[tuple[Delivery, Settlement]] = []
        self._sending: list[tuple[Delivery, Settlement]] = []
        """The outcomes of the round trip under way (renewed until it is answered)."""
        self._metric_children: dict[tuple[Any, ...], Any] = {}
        self._tally: dict[tuple[str, str, str], int] = {}
        """Jobs settled since the last round trip by (queue, task, outcome): added to the
        counter once per round trip, before their outcomes are sent (a lock per job less)."""
        self._holding: set[str] = set()
        """Queues whose in-progress gauge has been set (set again each round trip)."""
        self._redis_url = urls.resolve_url(settings.redis_url)
        self._activity = asyncio.Event()
        self._stopping = False
        self._retired = False
        """Its version was retired (a versioned rollout): it fetches only its pinned queues."""
        self._force = asyncio.Event()
        self.vitals = Vitals()
        self._script_error: str | None = None
        self._wait_ms = -1
        """From the last fetch: ms until a job held back for a time may run (-1: none)."""
        self._round = 0
        """Round trips so far: the order token of a round trip's acks (fetch.lua)."""
        self._fetch_seq = 0
        """Fetches so far: the number of the last one (fetch.lua's transit log)."""
        self._answered = 0
        """The last fetch whose reply was read or given up on (heartbeat.lua)."""
        self._renewals_failing = False
        """Whether the last lease renewal failed (logged once, until one succeeds)."""
        # created here, connected on first use inside run()'s loop
        self._redis: redis.asyncio.Redis = connections.async_client(settings.redis_url)
        self._scripts = Scripts(self._redis)
        # one fetch call per hash slot on Redis Cluster, one over all queues elsewhere
        self._router = FetchRouter(self.queues, rediscluster.is_cluster(self._redis))
        self._pinned = [q for q in self.queues if pin_of(q.name)]
        """What it still fetches once its version is retired: the jobs pinned to it."""
        self._wakes = WakeWaits(
            self._redis,
            self._router,
            self._scripts.idle,
            settings,
            self.vitals,
        )
        partitioner = Partitioner(settings.partitions)
        self._route = partitioner.route if partitioner.partitions else None
        """Where a follow-up on a partitioned queue goes (handoff.py); None: none is."""
        self._background: dict[str, asyncio.Task[None]] = {}
        """The loops beside the fetch loop (the heartbeat): /healthz fails once one ends."""
        self._complaints: dict[str, str] = {}
        """The last error each background step logged, so a repeated one is logged once."""
        self._handoffs: set[asyncio.Task[None]] = set()
        """Callback hand-offs under way (handoff.py), awaited before the worker leaves."""
        self.exit_code = 0

    def health(self) -> tuple[bool, str]:
        """(ok, message) for /healthz: fails when the worker has stopped consuming."""
        ok, message = self.vitals.health(self.settings.stall_seconds)
        if ok and (stuck := self.executor.health()) is not None:
            return False, stuck
        if ok and (stopped := self._stopped_background()) is not None:
            return False, stopped
        silent = time.monotonic() - self.vitals.last_beat
        if ok and silent > max(self.settings.stall_seconds, 3 * self.settings.heartbeat_interval):
            return False, f"no heartbeat has renewed the leases for {silent:.0f} s"
        return ok, message if not ok else f"ok: {len(self.inflight)} jobs in flight"

    def _start_background(self, name: str, loop: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a loop beside the fetch loop; its end, other than by cancellation at
        shutdown, is logged and fails /healthz."""
        task = asyncio.create_task(loop, name=f"kubeq-{name}")
        self._background[name] = task
        task.add_done_callback(self._background_ended)
        return task

    def _background_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            log.critical(
                "the %s task stopped; /healthz fails from now on",
                task.get_name(),
                exc_info=task.exception(),
            )

    def _stopped_background(self) -> str | None:
        """Why /healthz fails because a background loop has ended, or None."""
        for name, task in self._background.items():
            if task.done() and not self._stopping:
                error = None if task.cancelled() else task.exception()
                return f"the worker's {name} task has stopped: {error!r}"
        return None

    def _complain(self, step: str, exc: BaseException) -> None:
        """Log a background step's failure with its traceback, once until it changes (a
        heartbeat every second would otherwise repeat it for ever)."""
        what = f"{type(exc).__name__}: {exc}"
        if self._complaints.get(step) != what:
            self._complaints[step] = what
            log.error("%s failed (retried every heartbeat): %s", step, what, exc_info=exc)

    def _recovered(self, step: str) -> None:
        if self._complaints.pop(step, None) is not None:
            log.info("%s works again", step)

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

    def _count_settled(self) -> None:
        """Add the jobs settled since the last call to ``kubeq_jobs_total``."""
        tally, self._tally = self._tally, {}
        for labels, n in tally.items():
            self._metric(self.metrics.jobs, *labels).inc(n)
            add(self.settled, labels[0], labels[2], n)

    def _gauge_holding(self) -> None:
        """Set ``kubeq_jobs_in_progress`` per queue from what is in flight now."""
        held: dict[str, int] = dict.fromkeys(self._holding, 0)
        for queue, _ in self.inflight:
            held[queue] = held.get(queue, 0) + 1
        for queue, n in held.items():
            self._metric(self.metrics.in_progress, queue).set(n)
        self._holding = set(held)

    def _settle(self, d: Delivery, settlement: Settlement, count: bool = True) -> None:
        d.settled = True
        self.inflight.pop(d.key, None)
        if count:
            self._count(d, settlement.outcome.metric_label)
        if settlement.outcome is Ended.SUSPENDED:
            self._activity.set()  # recorded by suspend.lua: only the slot frees here
            return
        if not self._acks:
            self._acks_since = time.monotonic()
        self._acks.append((d, settlement))
        self._activity.set()

    @staticmethod
    def _to_hand_off(items: list[tuple[Delivery, Settlement]], flags: Any) -> list[str]:
        """The jobs of one ack.lua call whose callbacks wait for a hand-off, from its reply
        (a flag per job, or the error the call met); any answer but "applied" is logged."""
        if isinstance(flags, list) and len(flags) == len(items) == flags.count(AckFlag.APPLIED):
            return []  # the usual reply: every outcome applied, no hand-off waits
        return [
            d.id
            for i, (d, _) in enumerate(items)
            if AckFlag.report(d.id, flags if isinstance(flags, Exception) else flags[i])
        ]

    def _hand_back(self, unstarted: list[Delivery]) -> None:
        """Requeue leased jobs that never started: no attempt counted."""
        for d in unstarted:
            if not d.settled:
                d.handed_back = True
                self._settle(d, Settlement(Outcome.REQUEUE))
                if d.runner is not None:  # queued in the thread lane, withdrawn
                    d.runner.cancel()

    def _place(self, d: Delivery, room: int) -> int:
        """Start a job just leased, or keep it until a slot frees; returns ``room`` less what
        went to the thread lane. A sync task's job goes to the lane while it has ``room``
        (``_lane_room``), slot or not: the lane starts it when a slot frees, in the thread
        that freed it (threads.py). Any other job starts on a slot taken now. The rest
        waits in ``_prefetch``, and so does every job leased after one that waits there:
        jobs begin in the order they were leased (fetch.lua's order: priorities, weights)."""
        d.for_lane = self._for_lane(d)
        if self._prefetch.waiting:
            self._prefetch.hold(d)
            return room
        if d.for_lane and room > 0:
            self._to_lane(d)
            return room - 1
        if not d.for_lane and self._reserve(d):
            self._start(d)
        else:
            self._prefetch.hold(d)
        return room

    def _place_fresh(self) -> None:
        """Place the jobs the last fetch leased (``_place``), in their order, then start what
        waits for the slots freed meanwhile. Called soon after the fetch's reply is read, so
        that the next round trip is written first: Redis works on it while they are placed;
        or at once when there is none to write and the loop is about to block (loop.py).
        A job settled meanwhile (aborted, lost) is skipped; once the worker stops, the rest
        go back to the queue unstarted."""
        if self._placing is not None:  # it runs now: the scheduled call has nothing to do
            self._placing.cancel()
            self._placing = None
        fresh, self._fresh = self._fresh, []
        if self._stopping:
            self._hand_back(fresh)
            return
        room = self._lane_room()
        for d in fresh:
            if not d.settled:
                room = self._place(d, room)
        self._move_waiting()

    def _move_waiting(self) -> None:
        raise NotImplementedError  # loop.py

    def _to_lane(self, d: Delivery) -> None:
        d.queued = True
        self._queued.append((time.monotonic(), d))
        self._start(d)

    def _lane_room(self) -> int:
        """How many more sync jobs may go to the thread lane now: one per free slot and
        ``LANE_AHEAD`` more, less those that wait there or are on their way."""
        return self.executor.free() + defaults.LANE_AHEAD - self._lane_waiting()

    def _lane_waiting(self) -> int:
        """Jobs in the thread lane that wait for a slot, or are on their way there (started,
        not yet submitted: the newest of ``_queued``, as asyncio runs tasks in order)."""
        coming = 0
        for _, d in reversed(self._queued):
            if d.lane is not None or d.settled:
                break
            coming += 1
        return self.executor.waiting() + coming

    def _reserve(self, d: Delivery) -> bool:
        """Take a slot for ``d`` (not for the lane) now, unless none is free or jobs leased
        before it still wait in the thread lane (they take the next slots first)."""
        if self._lane_waiting() or not self.executor.reserve():
            return False
        d.reserved = True
        return True

    def _for_lane(self, d: Delivery) -> bool:
        """Whether ``d`` is a sync task's job that may wait for its slot in the thread lane:
        one that reads nothing from Redis before it runs (no chord, no batch)."""
        try:
            d.call = serialization.decode_call(d.job.payload)
        except ValueError:
            return False  # dead-lettered by its attempt, on a slot
        task = self.tasks.get(d.call[0])
        return (
            task is not None
            and task.options.batch is None
            and "chord_of" not in d.call[3]
            and self.executor.in_thread(task)
        )

    def _start(self, d: Delivery) -> None:
        raise NotImplementedError  # loop.py

    def _withdraw(self, d: Delivery) -> bool:
        """Whether ``d``, leased and waiting for a slot, is taken back before it begins (it
        will never run here); False once a thread took it, or its attempt ended."""
        if not d.waiting:
            return False
        return d.lane is None or self.executor.withdraw(d.lane)

    def _waiting(self) -> int:
        """Leased jobs that wait for a slot."""
        return len(self._fresh) + len(self._prefetch.waiting) + self.executor.waiting()

    def _stale(self) -> list[Delivery]:
        """What waits for a slot, when the slots turned out slow (prefetch.py): to hand back."""
        out = self._prefetch.stale()
        queued = self._queued
        while queued and not queued[0][1].waiting:
            queued.popleft()
        if queued and self._prefetch.slow(queued[0][0]):
            out += self._withdraw_queued()
        return out

    def _withdraw_queued(self) -> list[Delivery]:
        """Every job queued in the thread lane that has not begun, taken back."""
        out = [d for _, d in self._queued if self._withdraw(d)]
        self._queued.clear()
        return out

    async def _wait_activity(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._activity.wait(), timeout)

    def _defaults_for(self, name: str) -> TaskOptions:
        task = self.tasks.get(name)
        return task.options if task is not None else TaskOptions()

    async def _round_trip(self, fetch: bool) -> int:
        """One pipelined exchange with Redis (loop.py)."""
        raise NotImplementedError
