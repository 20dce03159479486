"""The worker pools of one TaskQueue (``spec.pools[]``): one pass after the TaskQueue's own.

For each pool, as the TaskQueue's loop does for its own Deployment: make its Deployment
exist with the pool's pod template (``pooldeployment``), read ITS queues
(``<queue>@<pool>`` of each of the TaskQueue's queues, and those it declares), decide with
the same policy (``policy.decide``) on the pool's scaling settings, mark idle pods cheap to
delete before a scale-down, scale, post an Event whose message names the pool, and record
the pool in ``status.pools``. A pool removed from the spec has its Deployments scaled to zero.

With ``spec.rollout.strategy: Versioned`` each pool's pod template is a version with its
own Deployment (``versioned.pool_deployment``), as the TaskQueue's own workers are: the pass
creates and scales the newest only, without the jobs its old versions hold, and the
rollout driver (``rollout.Versions``, one design for both) retires the old ones in the
pool's queues, removes them and reports them in ``status.pools[].versions``. A Job-mode
pool has no versions: each Job runs one job and ends, and a template change never deletes
a Job whose pod runs (``jobmode``).

It also publishes which pools each queue has (``kubeq.client.pools``): the client refuses a
job for a pool not published, so a job never waits in a queue no pod consumes. Without pools
in the spec it only removes what this TaskQueue published before (once per spec change).

Trouble with one pool is reported (an Event, the pool's ``error`` in the status) and never
stops the TaskQueue's own loop or the other pools.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from kubeq.client import pools as client_pools
from kubeq.store import keys
from kubeq.store import workers as workerinfo
from kubeq.store.stats import QueueStats
from kubeq_operator import kube, podcost, rollout, versioned
from kubeq_operator.drainrate import DrainRate
from kubeq_operator.jobmode import JobPools
from kubeq_operator.policy import Decision, History, decide, observe
from kubeq_operator.pooldeployment import build, selector_labels
from kubeq_operator.poolspec import PoolSpec
from kubeq_operator.reconcile import (
    Action,
    DeploymentConflict,
    DeploymentView,
    ReplicaTracker,
    ensure_manifest,
)
from kubeq_operator.redis_source import RedisDown
from kubeq_operator.spec import TaskQueueSpec
from kubeq_operator.status import now_iso

if TYPE_CHECKING:
    from kubeq_operator.loop import TaskQueueLoop

PUBLISH_SECONDS = 30.0
"""The pools are published again at least this often (a key removed by hand comes back)."""

FindPools = Callable[[], dict[str, list[DeploymentView]]]
"""pool -> its Deployments (each version's, or the one)."""

log = logging.getLogger("kubeq_operator")


@dataclass
class PoolState:
    """What the operator remembers of one pool between passes."""

    replicas: ReplicaTracker = field(default_factory=ReplicaTracker)
    history: History = field(default_factory=History)
    drain: DrainRate = field(default_factory=DrainRate)
    decision: Decision | None = None
    error: str | None = None


class Pools:
    """The pools of one TaskQueue (lives as long as its loop)."""

    def __init__(
        self, loop: TaskQueueLoop, find_pools: FindPools, versions: rollout.Versions
    ) -> None:
        self.loop = loop
        self.find_pools = find_pools
        self.versions = versions
        self.state: dict[str, PoolState] = {}
        self._published: tuple[TaskQueueSpec, float] | None = None
        self._removed: set[str] = set()
        """Pools removed from the spec whose Deployment was scaled to zero and reported."""
        self.jobs = JobPools(loop)

    @property
    def owner(self) -> str:
        return f"{self.loop.namespace}/{self.loop.name}"

    async def step(self) -> None:
        """One pass over every pool (nothing while the spec is invalid or being deleted)."""
        loop, spec = self.loop, self.loop.spec
        if spec is None or (loop.body.get("metadata") or {}).get("deletionTimestamp"):
            return
        try:
            await self.publish(spec)
            views = self.find_pools()
            entries = []
            for pool in spec.pools:
                if pool.mode == "Job":  # one Kubernetes Job per job: jobmode.py
                    entries.append(await self.jobs.step_pool(spec, pool))
                    continue
                state = self.state.setdefault(pool.name, PoolState())
                views_of = views.get(pool.name, [])
                entries.append(await self.step_pool(spec, pool, state, views_of))
            await self.remove_stale(spec, views)
            self.jobs.settle(spec)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the TaskQueue's own loop goes on
            if kube.is_namespace_terminating(e):  # going away with its namespace: quietly
                log.debug("%s: namespace terminating", self.owner)
                return
            loop.logger.exception("pools of %s failed", self.owner)
            self.report(None, f"{type(e).__name__}: {e}")
            return
        wanted = {p.name for p in spec.pools}
        self.state = {k: v for k, v in self.state.items() if k in wanted}
        self.versions.keep_pools(p.name for p in spec.pools if p.mode == "Deployment")
        if entries:
            loop.book.status["pools"] = entries
        else:
            loop.book.status.pop("pools", None)
        await loop.flush_status()

    def report(self, state: PoolState | None, message: str, pool: str = "") -> None:
        """A pool's trouble: a Warning Event when it starts or changes."""
        if state is not None and state.error == message:
            return
        if state is not None:
            state.error = message
        where = f"pool {pool}: " if pool else "pools: "
        self.loop.event("Warning", "PoolError", where + message)

    # -- one pool ------------------------------------------------------------------------

    async def step_pool(
        self, spec: TaskQueueSpec, pool: PoolSpec, state: PoolState, views: list[DeploymentView]
    ) -> dict[str, Any]:
        loop = self.loop
        pspec = spec.of_pool(pool)
        name = versioned.pool_deployment(loop.name, pool.name, pspec)
        entry: dict[str, Any] = {"name": pool.name, "deployment": name}
        view = rollout.current(views, pspec)
        track = self.versions.track(pool.name)
        if view is None or view.worker_hash != pspec.worker_hash():
            try:
                await self.ensure(spec, pool, state, pspec, name)
            except DeploymentConflict as e:
                self.report(state, str(e), pool.name)
                return {**entry, "error": str(e)}
        now = time.monotonic()
        current = state.replicas.current(view, now)
        stats = await self.read(pspec, pool, state)
        if current is not None:
            rate = await self.drain_rate(pspec, stats, state)
            starting = max(0, current - view.ready) if view is not None else current
            obs = observe(stats, current, pspec.scaling.poll_seconds, rate, starting)
            obs = versioned.discount(obs, track.load, pspec)  # the newest version's load only
            decision = decide(obs, pool.scaling, state.history, now)
            state.history, state.decision = decision.history, decision
            if decision.replicas != current:
                await self.scale(pool, name, decision, current, stats)
        d = state.decision
        entry.update(replicas=view.current if view is not None else 0)
        if d is not None:
            entry.update(desiredReplicas=d.replicas, decision=f"pool {pool.name}: {d.message}")
        if stats is not None:
            entry.update(
                backlog=sum(s.backlog for s in stats),
                inFlight=sum(s.in_flight for s in stats),
                oldestJobAgeSeconds=round(max((s.oldest_ready_age for s in stats), default=0.0), 1),
            )
        entry["queues"] = list(pool.logical_queues(spec.queues))
        if found := await self.versions.step_pool(pspec, track, views, entry.get("inFlight")):
            entry["versions"] = found
        if state.error is not None:
            entry["error"] = state.error
        return entry

    async def ensure(
        self, spec: TaskQueueSpec, pool: PoolSpec, state: PoolState, pspec: TaskQueueSpec, name: str
    ) -> None:
        loop = self.loop
        expected = state.replicas.expected
        replicas = expected if expected is not None else pool.scaling.min_replicas
        make = versioned.build_pool if pspec.rollout.versioned else build
        done = await ensure_manifest(
            loop.namespace,
            name,
            loop.body,
            pspec.worker_hash(),
            lambda n: make(loop.name, loop.namespace, spec, pool, n),
            replicas,
        )
        if done.action is Action.CREATED and done.replicas is not None:
            state.replicas.wrote(done.replicas, time.monotonic())
            loop.event(
                "Normal",
                "PoolDeploymentCreated",
                f"pool {pool.name}: created Deployment {name} with {done.replicas} replicas",
            )
        elif done.action is Action.ROLLED:
            loop.event(
                "Normal",
                "PoolSpecChanged",
                f"pool {pool.name}: rolling Deployment {name} to the new worker spec "
                f"({done.old_hash} -> {pspec.worker_hash()})",
            )

    async def read(
        self, pspec: TaskQueueSpec, pool: PoolSpec, state: PoolState
    ) -> list[QueueStats] | None:
        """The pool's queues' numbers, or None (the TaskQueue's own read reports Redis)."""
        try:
            stats = await self.loop.source.read_queues(pspec, pspec.physical_queues)
        except (RedisError, OSError, TimeoutError, RedisDown) as e:
            log.warning("pool %s of %s: queues not read: %s", pool.name, self.owner, e)
            return None
        state.error = None
        return stats

    async def drain_rate(
        self, pspec: TaskQueueSpec, stats: list[QueueStats] | None, state: PoolState
    ) -> float | None:
        """The pool's smoothed drain rate per worker (read only with targetWaitSeconds)."""
        if pspec.scaling.target_wait_seconds is None or stats is None:
            return state.drain.rate
        waiting = any(s.backlog > 0 for s in stats if not s.paused)
        try:
            client = await self.loop.source.client(pspec)
            docs = await workerinfo.read_all(client, pspec.redis.prefix)
        except (RedisError, OSError, RedisDown) as e:
            log.warning("worker counters of %s not read: %s", self.owner, e)
            return state.drain.rate
        return state.drain.update(docs, pspec.physical_queues, waiting, time.time())

    async def scale(
        self,
        pool: PoolSpec,
        name: str,
        d: Decision,
        current: int,
        stats: list[QueueStats] | None,
    ) -> None:
        loop = self.loop
        if d.replicas < current and stats is not None:
            await self.mark_pods(pool, stats)
        await kube.scale_deployment(loop.namespace, name, d.replicas)
        message = f"pool {pool.name}: {current} -> {d.replicas} replicas: {d.message}"
        log.info("%s: %s", self.owner, message)  # first, as the loop's own scaling does
        self.state[pool.name].replicas.wrote(d.replicas, time.monotonic())
        loop.book.status["lastScaleTime"] = now_iso()
        loop.event("Normal", d.reason, message)

    async def mark_pods(self, pool: PoolSpec, stats: list[QueueStats]) -> None:
        """Idle pods of the pool cheap, busy ones expensive to delete (as the loop does)."""
        ns = self.loop.namespace
        busy = podcost.busy_by_pod(s.workers for s in stats)
        selector = ",".join(
            f"{k}={v}" for k, v in selector_labels(self.loop.name, pool.name).items()
        )
        pods = await kube.list_pods(ns, selector)
        current = {
            p["metadata"]["name"]: (p["metadata"].get("annotations") or {}).get(
                podcost.COST_ANNOTATION
            )
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
        }
        for pod, cost in podcost.plan(current, busy).items():
            try:
                await kube.annotate_pod(ns, pod, {podcost.COST_ANNOTATION: str(cost)})
            except Exception as e:  # the scale-down goes on; the ReplicaSet picks by its rules
                log.warning("could not mark pod %s/%s: %s", ns, pod, kube.describe_error(e))

    # -- the spec's pools as a whole -------------------------------------------------------

    async def remove_stale(
        self, spec: TaskQueueSpec, views: dict[str, list[DeploymentView]]
    ) -> None:
        """Scale to zero the Deployments of each pool no longer in the spec, and say so once.
        They are kept (jobs may still wait in the pool's queues, and a pool added back serves
        them): the Event says how to delete them."""
        wanted = {p.name for p in spec.pools if p.mode == "Deployment"}
        self._removed &= set(views) - wanted
        for pool, found in views.items():
            if pool in wanted or pool in self._removed or not found:
                continue
            for view in found:
                if view.replicas:
                    await kube.scale_deployment(self.loop.namespace, view.name, 0)
            self._removed.add(pool)
            names = " ".join(sorted(v.name for v in found))
            self.loop.event(
                "Normal",
                "PoolRemoved",
                f"pool {pool} no longer runs a Deployment: scaled Deployment {names} to 0; "
                f"delete it with kubectl -n {self.loop.namespace} delete deployment {names} "
                f"(jobs still in its queues wait there until a pool {pool} serves them again)",
            )

    async def publish(self, spec: TaskQueueSpec) -> None:
        """Make ``<prefix>:pools`` say which pools each of the TaskQueue's queues has: when
        the spec changes and, with pools, every PUBLISH_SECONDS."""
        now = time.monotonic()
        last = self._published
        if (
            last is not None
            and last[0] is spec
            and (not spec.pools or now - last[1] < PUBLISH_SECONDS)
        ):
            return
        wanted: dict[str, str] = {}
        if spec.pools:
            value = client_pools.encode(self.owner, {p.name: p.tasks for p in spec.pools})
            wanted = dict.fromkeys(spec.queues, value)
        try:
            await self.write(spec, wanted)
        except (RedisError, OSError, RedisDown) as e:
            log.warning("pools of %s not published: %s", self.owner, e)
            return
        self._published = (spec, now)

    async def write(self, spec: TaskQueueSpec, wanted: dict[str, str]) -> None:
        """Set ``wanted`` and remove what this TaskQueue published that it no longer wants."""
        # Any: redis-py's own stubs type these awaits differently from one release to another
        client: Any = await self.loop.source.client(spec)
        key = keys.pools_key(spec.redis.prefix)
        live = client_pools.decode(await client.hgetall(key))
        stale = [q for q, e in live.items() if e.by == self.owner and q not in wanted]
        if stale:
            await client.hdel(key, *stale)
        if wanted:
            await client.hset(key, mapping=dict(wanted.items()))

    async def forget(self) -> None:
        """The TaskQueue is deleted: remove what it published (a failure is logged)."""
        spec = self.loop.spec
        if spec is None:
            return
        try:
            await self.write(spec, {})
        except (RedisError, OSError, RedisDown) as e:
            log.warning("pools of deleted %s not removed from Redis: %s", self.owner, e)
