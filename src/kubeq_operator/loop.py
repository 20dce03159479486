"""The control loop of one TaskQueue: one pass reads, decides, acts and reports.

Each pass (every ``spec.scaling.pollSeconds``):

1. parse the spec (once per generation); a bad spec becomes ``Ready=False/InvalidSpec``
   with a message naming the field, and a Warning Event; the loop keeps waiting for a fix;
2. make the worker Deployment exist with the current pod template (``reconcile``);
3. read every queue's numbers (``redis_source``; one round trip shared with the other
   TaskQueues on the same Redis);
4. run the pure scaling policy (``policy``); before a scale-down, mark idle pods cheap to
   delete (``podcost``); patch the scale; post an Event with the numbers; count it;
5. enqueue due periodic jobs (``schedules``) through the same Redis client;
6. patch the status when it changed (``status.StatusBook`` decides when).

The loop knows nothing of kopf: ``handlers`` gives it the object's body (a mapping kopf keeps
current), a view of the worker Deployment from its index, and a function that posts an Event.
Everything one object does is caught and reported on that object: one bad TaskQueue never
stops the operator from serving the others, and nothing fails silently (a failed Event post
or pod annotation is logged with its reason).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from redis.exceptions import RedisError

from kubeq.options import Call
from kubeq.store import urls
from kubeq.store import workers as workerinfo
from kubeq.store.stats import QueueStats
from kubeq_operator import fairscale, kube, metrics, podcost, schedules
from kubeq_operator.deployment import selector_labels
from kubeq_operator.drainrate import DrainRate
from kubeq_operator.policy import Decision, History, decide, observe
from kubeq_operator.reconcile import (
    Action,
    DeploymentConflict,
    DeploymentView,
    ReplicaTracker,
    ensure_deployment,
)
from kubeq_operator.redis_source import RedisDown, RedisSource
from kubeq_operator.spec import SpecError, TaskQueueSpec, parse
from kubeq_operator.status import FALSE, MESSAGE_LIMIT, TRUE, Condition, Reason, StatusBook, now_iso
from kubeq_operator.versioned import Load, discount, worker_deployment

COST_SETTLE_SECONDS = 1.0
"""Pause between re-annotating pods and lowering replicas, so the ReplicaSet controller's
cache has the new deletion costs when it picks the pods to delete."""
RETRY_SECONDS = 5.0
RATE_SYNC_SECONDS = 30.0
"""spec.rateLimits is written to Redis when the spec changes and at least this often."""
"""The wait after a failed pass, an invalid spec or a Deployment conflict."""

PostEvent = Callable[[str, str, str], None]
"""``(type, reason, message)``: post a Kubernetes Event on the TaskQueue."""
FindDeployment = Callable[[], DeploymentView | None]

log = logging.getLogger("kubeq_operator")


class TaskQueueLoop:
    """State of one TaskQueue's control loop (lives as long as its daemon)."""

    def __init__(
        self,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        find_deployment: FindDeployment,
        post_event: PostEvent,
        source: RedisSource | None = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.body = body
        self.logger = logger
        self.find_deployment = find_deployment
        self.post_event = post_event
        self.source = source or RedisSource(namespace, kube.read_secret_key)
        self.spec: TaskQueueSpec | None = None
        self.history = History()
        self._rates_synced: tuple[int, TaskQueueSpec] | None = None
        self._rates_at = 0.0
        self._fair_synced: tuple[Any, ...] | None = None
        self.replicas = ReplicaTracker()
        self.book = StatusBook()
        self.last_decision: Decision | None = None
        self.drain = DrainRate()
        self.sched = schedules.Driver(namespace, name)
        self.versions_load = Load()  # rollout.Versions: what each version's workers hold

    # -- one pass ------------------------------------------------------------------------

    async def step(self) -> float:
        """One pass of the loop; returns the seconds to wait before the next."""
        try:
            return await self._step()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # one object's trouble must never stop the loop
            if kube.is_namespace_terminating(e):
                # its namespace is being deleted (the Deployment went first): kopf stops this
                # loop when the TaskQueue goes; nothing to create, report or post until then
                log.debug("%s/%s: namespace terminating", self.namespace, self.name)
                return RETRY_SECONDS
            self.logger.exception("pass failed for %s/%s", self.namespace, self.name)
            self.book.set(Condition.READY, FALSE, Reason.OPERATOR_ERROR, f"{type(e).__name__}: {e}")
            try:
                await self.flush_status(force=True)
            except Exception as e2:  # the API may be what failed: say so, retry next pass
                log.warning("status of %s/%s not written: %s", self.namespace, self.name, e2)
            return RETRY_SECONDS

    async def _step(self) -> float:
        metadata = self.body.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return 1.0  # being deleted: kopf stops this daemon; write nothing more
        generation = int(metadata.get("generation") or 0)
        if generation != self.book.generation:
            self.book.generation = generation
            try:
                self.spec = parse(self.body.get("spec") or {})
            except SpecError as e:
                self.spec = None
                message = f"{e}. Fix the TaskQueue spec (kubectl edit tq {self.name})."
                self.book.set(Condition.READY, FALSE, Reason.INVALID_SPEC, message)
                self.book.set(Condition.SCALING, FALSE, Reason.INVALID_SPEC, "the spec is invalid")
                self.event("Warning", Reason.INVALID_SPEC, message)
                self.book.status["observedGeneration"] = generation
                await self.flush_status(force=True)
            else:
                self.book.status["observedGeneration"] = generation
        spec = self.spec
        if spec is None:
            return RETRY_SECONDS

        dep = self.find_deployment()
        if dep is None or dep.worker_hash != spec.worker_hash():
            try:
                await self.ensure(spec)
            except DeploymentConflict as e:
                if self.book.reason(Condition.READY) != Reason.DEPLOYMENT_CONFLICT:
                    self.event("Warning", Reason.DEPLOYMENT_CONFLICT, str(e))
                self.book.set(Condition.READY, FALSE, Reason.DEPLOYMENT_CONFLICT, str(e))
                self.book.set(
                    Condition.SCALING, FALSE, Reason.DEPLOYMENT_CONFLICT, "nothing to scale"
                )
                await self.flush_status()
                return max(RETRY_SECONDS, spec.scaling.poll_seconds)
        current = self.replicas.current(dep, time.monotonic())

        stats = await self.read(spec)
        if stats is not None:
            await self.sync_rate_limits(spec, generation)
        if current is not None:
            rate = await self.drain_rate(spec, stats)
            # pods asked for but not ready yet are capacity coming (the watch's readyReplicas)
            starting = max(0, current - dep.ready) if dep is not None else current
            obs = observe(stats, current, spec.scaling.poll_seconds, rate, starting)
            obs = await fairscale.observe_keys(self, spec, stats, obs)
            obs = discount(obs, self.versions_load, spec)  # the newest version's load only
            decision = decide(obs, spec.scaling, self.history, time.monotonic())
            decision = schedules.prewarm(decision, self.sched.floor, spec.scaling, current)
            self.history = decision.history
            await self.apply(decision, current, stats)
        if stats is not None:
            await self.run_schedules(spec, stats[0].now)
        self.update_numbers(spec, stats, dep)
        await self.flush_status()
        return spec.scaling.poll_seconds

    # -- Deployment ----------------------------------------------------------------------

    async def ensure(self, spec: TaskQueueSpec) -> None:
        """Create the worker Deployment, or roll it to the current worker spec."""
        expected = self.replicas.expected
        replicas = expected if expected is not None else spec.scaling.min_replicas
        done = await ensure_deployment(self.namespace, self.name, self.body, spec, replicas)
        if done.action is Action.CREATED:
            if done.replicas is not None:
                self.replicas.wrote(done.replicas, time.monotonic())
                self.event(
                    "Normal",
                    Reason.DEPLOYMENT_CREATED,
                    f"created Deployment {done.name} with {done.replicas} replicas",
                )
            self.book.set(
                Condition.READY, TRUE, Reason.DEPLOYMENT_READY, f"Deployment {done.name} exists"
            )
        elif done.action is Action.ROLLED:
            self.event(
                "Normal",
                Reason.WORKER_SPEC_CHANGED,
                f"rolling Deployment {done.name} to the new worker "
                f"spec ({done.old_hash} -> {spec.worker_hash()})",
            )

    # -- Redis ---------------------------------------------------------------------------

    async def read(self, spec: TaskQueueSpec) -> list[QueueStats] | None:
        """Every queue's numbers, or None (condition set, Event posted, metric counted)."""
        was_failing = self.source.failures > 0
        try:
            stats = await self.source.read(spec)
        except RedisDown as e:
            metrics.redis_errors.labels(self.namespace, self.name).inc()
            # one Event when the trouble starts or changes, not one every pass
            if not was_failing or self.book.reason(Condition.REDIS_REACHABLE) != e.reason:
                self.event("Warning", e.reason, str(e))
            self.book.set(Condition.REDIS_REACHABLE, FALSE, e.reason, str(e))
            return None
        if was_failing:
            url = urls.redact(spec.redis.url)
            self.event("Normal", Reason.REDIS_REACHABLE, f"reading {url} again")
        self.book.set(
            Condition.REDIS_REACHABLE, TRUE, Reason.CONNECTED, f"read {len(stats)} queues"
        )
        return stats

    async def sync_rate_limits(self, spec: TaskQueueSpec, generation: int) -> None:
        """Apply ``spec.rateLimits`` to Redis when the spec changes and, when it names limits,
        every RATE_SYNC_SECONDS (so a limit cleared by hand comes back), and ``spec.fairness``
        when it changes only; a failure waits for the next pass (the read just
        succeeded, so it is rare and the next read reports it)."""
        now = time.monotonic()
        if self._rates_synced == (generation, spec) and (
            # without limits in the spec there is nothing to restore: a spec change (a new
            # generation) is the only time a limit of this TaskQueue's can need removing
            not spec.rate_limits or now - self._rates_at < RATE_SYNC_SECONDS
        ):
            return
        # spec.fairness is written only when it changed (or at start): a weight set by hand
        # lasts until then (docs/fairness.md, Who owns the weights)
        weights = self._fair_synced != spec.fairness
        try:
            changes = await self.source.sync_rate_limits(
                spec, f"{self.namespace}/{self.name}", weights=weights
            )
        except (RedisError, OSError, RedisDown) as e:
            log.warning("%s/%s: could not apply spec.rateLimits: %s", self.namespace, self.name, e)
            return
        self._rates_synced, self._rates_at = (generation, spec), now
        self._fair_synced = spec.fairness
        if changes:
            self.event("Normal", "RateLimits", "; ".join(changes))

    # -- scaling -------------------------------------------------------------------------

    async def drain_rate(self, spec: TaskQueueSpec, stats: list[QueueStats] | None) -> float | None:
        """The smoothed drain rate per worker (only read when targetWaitSeconds is set)."""
        if spec.scaling.target_wait_seconds is None or stats is None:
            return self.drain.rate
        waiting = any(s.backlog > 0 for s in stats if not s.paused)
        try:
            client = await self.source.client(spec)
            docs = await workerinfo.read_all(client, spec.redis.prefix)
        except (RedisError, OSError, RedisDown) as e:
            log.warning("worker counters of %s/%s not read: %s", self.namespace, self.name, e)
            return self.drain.rate
        return self.drain.update(docs, spec.physical_queues, waiting, time.time())

    async def apply(self, d: Decision, current: int, stats: list[QueueStats] | None) -> None:
        self.last_decision = d
        self.book.status["desiredReplicas"] = d.replicas
        metrics.workers_desired.labels(self.namespace, self.name).set(d.replicas)
        if d.reason in ("RedisError", "Fallback"):
            self.book.set(Condition.SCALING, FALSE, Reason.SCALING_HELD, d.message)
        elif d.replicas == current:
            self.book.set(Condition.SCALING, TRUE, d.reason, d.message)
        if d.replicas == current:
            return
        if d.replicas < current and stats is not None:
            await self.mark_pods(stats)
        await kube.scale_deployment(
            self.namespace, worker_deployment(self.name, self.spec), d.replicas
        )
        # logged first: the Deployment shows the change as soon as the API server has it
        log.info(
            "%s/%s: %d -> %d replicas: %s",
            self.namespace,
            self.name,
            current,
            d.replicas,
            d.message,
        )
        self.replicas.wrote(d.replicas, time.monotonic())
        self.book.status["lastScaleTime"] = now_iso()
        metrics.scale_events.labels(self.namespace, self.name, d.direction).inc()
        self.event("Normal", d.reason, f"{current} -> {d.replicas} replicas: {d.message}")
        self.book.set(Condition.SCALING, TRUE, d.reason, d.message)

    async def mark_pods(self, stats: list[QueueStats]) -> None:
        """Idle pods cheap, busy pods expensive to delete, just before a scale-down."""
        busy = podcost.busy_by_pod(s.workers for s in stats)
        selector = ",".join(f"{k}={v}" for k, v in selector_labels(self.name).items())
        pods = await kube.list_pods(self.namespace, selector)
        current = {
            p["metadata"]["name"]: (p["metadata"].get("annotations") or {}).get(
                podcost.COST_ANNOTATION
            )
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
        }
        changes = podcost.plan(current, busy)
        if not changes:
            return
        results = await asyncio.gather(
            *(
                kube.annotate_pod(self.namespace, pod, {podcost.COST_ANNOTATION: str(cost)})
                for pod, cost in changes.items()
            ),
            return_exceptions=True,
        )
        for (pod, cost), result in zip(changes.items(), results, strict=True):
            if isinstance(result, BaseException):
                # the scale-down goes on: the ReplicaSet then picks this pod by its own rules
                log.warning(
                    "could not mark pod %s/%s with deletion cost %d: %s",
                    self.namespace,
                    pod,
                    cost,
                    kube.describe_error(result),
                )
        await asyncio.sleep(COST_SETTLE_SECONDS)

    # -- schedules -----------------------------------------------------------------------

    async def run_schedules(self, spec: TaskQueueSpec, now: float) -> None:
        """Spec schedules into Redis, fire every due schedule, read the pre-warm floor."""

        async def enqueue(calls: list[Call]) -> None:
            await self.source.enqueue(spec, calls)

        try:
            await self.sched.tick(
                await self.source.client(spec),
                *(spec.redis.prefix, spec.schedules, spec.queues, enqueue),
                lambda reason, message: self.event("Normal", reason, message),
                now,
            )
        except (RedisError, OSError) as e:
            self.logger.warning("schedules of %s/%s: %s", self.namespace, self.name, e)

    # -- status and events ---------------------------------------------------------------

    def event(self, type_: str, reason: str, message: str) -> None:
        """Post an Event on the TaskQueue; a failure is logged with its reason, not raised.

        (Logged on the module's logger, not the object's: kopf would post that as an Event.)
        """
        try:
            self.post_event(type_, str(reason), message[:MESSAGE_LIMIT])
        except Exception as e:
            log.warning(
                "could not post the %s Event %s on %s/%s: %s: %s",
                type_,
                reason,
                self.namespace,
                self.name,
                type(e).__name__,
                e,
            )

    def update_numbers(
        self, spec: TaskQueueSpec, stats: list[QueueStats] | None, dep: DeploymentView | None
    ) -> None:
        labels = (self.namespace, self.name)
        if stats is not None:
            for s in stats:
                metrics.record_queue(self.namespace, self.name, s)
            self.book.record_queues(stats)
        current = dep.current if dep is not None else 0
        metrics.workers_current.labels(*labels).set(current)
        metrics.workers_max.labels(*labels).set(spec.scaling.max_replicas)
        if spec.scaling.target_wait_seconds is not None:
            metrics.target_wait.labels(*labels).set(spec.scaling.target_wait_seconds)
        metrics.last_pass.labels(*labels).set_to_current_time()
        self.book.record_readiness(current, dep is not None, spec.queues)

    async def flush_status(self, force: bool = False) -> None:
        now = time.monotonic()
        status = self.book.to_send(now, force)
        if status is None:
            return
        await kube.patch_status(self.namespace, self.name, status)
        self.book.sent(status, now)

    async def close(self) -> None:
        self.sched.close()
        await self.source.close()
        if self.spec is not None:
            metrics.forget(self.namespace, self.name, self.spec.physical_queues)
