"""kopf handlers: one daemon per TaskQueue runs the whole control loop for that object.

Why one daemon and no create/update handlers: a single writer per TaskQueue (no races
between a handler that rolls the Deployment and a loop that scales it), and one code path
for creation, spec changes, operator restarts and a Deployment someone deleted. Each pass
(every ``spec.scaling.pollSeconds``):

1. parse the spec (once per generation); a bad spec becomes ``Ready=False/InvalidSpec``
   with a message naming the field, and a Warning Event; the loop keeps waiting for a fix;
2. make the worker Deployment exist with the current pod template (hash annotation);
3. read every queue's numbers in one Redis round trip (password from the Secret);
4. run the pure scaling policy; before a scale-down, mark idle pods cheap to delete;
   patch the scale; post an Event with the numbers; count it in the metrics;
5. enqueue due periodic jobs (``spec.schedules``);
6. patch the status when it changed (numbers at most every ``STATUS_INTERVAL`` seconds).

Deployments are read from a kopf index (a watch), not polled, so 100 TaskQueues at a 1 s
poll cost one Redis round trip each per second and almost no API traffic.
Everything one object does is caught and reported on that object: one bad TaskQueue never
stops the operator from serving the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
import redis.asyncio
from redis.exceptions import RedisError

from kubeq import connections
from kubeq.app import App, Call
from kubeq.stats import QueueStats, read_stats_async

from . import kube, metrics, podcost, schedules
from .deployment import (
    ANNOTATION_HASH,
    GROUP,
    LABEL_MANAGED,
    LABEL_TASKQUEUE,
    MANAGED_BY,
    PLURAL,
    VERSION,
    build,
    deployment_name,
    selector_labels,
)
from .policy import Decision, History, Observation, decide
from .spec import SpecError, TaskQueueSpec, parse

STATUS_INTERVAL = 2.0
"""Numbers-only status updates are sent at most this often (conditions at once)."""
SECRET_REFRESH = 30.0
"""A Secret's password is re-read this often (and after each Redis error)."""
COST_SETTLE_SECONDS = 1.0
"""Pause between re-annotating pods and lowering replicas, so the ReplicaSet controller's
cache has the new deletion costs when it picks the pods to delete."""
FINALIZER = "kubeq.dev/operator"
AGE = "oldestJobAgeSeconds"

log = logging.getLogger("kubeq_operator")


# -- operator-wide setup ------------------------------------------------------------------


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.posting.reporting_component = "kubeq-operator"
    settings.posting.level = logging.WARNING  # our own Events are posted explicitly
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    port = int(getattr(memo, "metrics_port", 0) or 0)
    if port:
        metrics.serve(port)
        log.info("metrics on :%d/metrics", port)


@dataclass(frozen=True)
class DeploymentView:
    """What the loop needs of a worker Deployment (from the index, so from the watch)."""

    name: str
    replicas: int
    current: int
    ready: int
    worker_hash: str | None


@kopf.index("apps", "v1", "deployments", labels={LABEL_MANAGED: MANAGED_BY})
def kubeq_workers(
    namespace: str | None,
    name: str,
    labels: kopf.Labels,
    annotations: kopf.Annotations,
    spec: kopf.Spec,
    status: kopf.Status,
    **_: Any,
) -> dict[tuple[str | None, str], DeploymentView]:
    taskqueue = labels.get(LABEL_TASKQUEUE, "")
    view = DeploymentView(
        name=name,
        replicas=int(spec.get("replicas") or 0),
        current=int(status.get("replicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        worker_hash=annotations.get(ANNOTATION_HASH),
    )
    return {(namespace, taskqueue): view}


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def taskqueue_loop(
    name: str,
    namespace: str | None,
    body: kopf.Body,
    logger: kopf.Logger,
    stopped: kopf.DaemonStopped,
    **kwargs: Any,
) -> None:
    kubeq_workers: kopf.Index[tuple[str | None, str], DeploymentView] = kwargs["kubeq_workers"]
    loop = TaskQueueLoop(namespace or "default", name, body, logger, kubeq_workers)
    try:
        while not stopped:
            delay = await loop.step()
            await stopped.wait(delay)
    finally:
        await loop.close()


# -- the per-TaskQueue loop ---------------------------------------------------------------


class DeploymentConflict(Exception):
    """The worker Deployment's name is taken by a Deployment this TaskQueue does not own."""


class RedisConfigError(Exception):
    """The TaskQueue's Redis cannot be configured (e.g. the Secret is missing)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TaskQueueLoop:
    """State of one TaskQueue's control loop (lives as long as its daemon)."""

    def __init__(
        self,
        namespace: str,
        name: str,
        body: kopf.Body,
        logger: kopf.Logger | logging.Logger,
        index: kopf.Index[tuple[str | None, str], DeploymentView],
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.body = body
        self.logger = logger
        self.index = index
        self.generation: int | None = None
        self.spec: TaskQueueSpec | None = None
        self.history = History()
        self.expected: int | None = None
        self.expected_at = 0.0
        self.redis: redis.asyncio.Redis | None = None
        self.redis_key: tuple[str, str | None] | None = None
        self.password: str | None = None
        self.password_at = -1e9
        self.app: App | None = None
        self.conditions: dict[str, dict[str, Any]] = {}
        self.status: dict[str, Any] = {}
        self.sent: dict[str, Any] = {}
        self.sent_at = -1e9
        self.last_decision: Decision | None = None
        self.redis_failures = 0

    # -- one pass ------------------------------------------------------------------------

    async def step(self) -> float:
        """One pass of the loop; returns the seconds to wait before the next."""
        try:
            return await self._step()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # one object's trouble must never stop the loop
            self.logger.exception("pass failed for %s/%s", self.namespace, self.name)
            self.set_condition("Ready", "False", "OperatorError", f"{type(e).__name__}: {e}")
            with contextlib.suppress(Exception):
                await self.flush_status(force=True)
            return 5.0

    async def _step(self) -> float:
        if self.body.metadata.get("deletionTimestamp"):
            return 1.0  # being deleted: kopf stops this daemon; write nothing more
        generation = int(self.body.metadata.get("generation") or 0)
        if generation != self.generation:
            self.generation = generation
            try:
                self.spec = parse(self.body.get("spec") or {})
            except SpecError as e:
                self.spec = None
                message = f"{e}. Fix the TaskQueue spec (kubectl edit tq {self.name})."
                self.set_condition("Ready", "False", "InvalidSpec", message)
                self.set_condition("Scaling", "False", "InvalidSpec", "the spec is invalid")
                self.event("Warning", "InvalidSpec", message)
                self.status["observedGeneration"] = generation
                await self.flush_status(force=True)
            else:
                self.status["observedGeneration"] = generation
        spec = self.spec
        if spec is None:
            return 5.0

        dep = self.deployment()
        if dep is None or dep.worker_hash != spec.worker_hash():
            try:
                await self.ensure_deployment(spec, dep)
            except DeploymentConflict as e:
                if self.conditions.get("Ready", {}).get("reason") != "DeploymentConflict":
                    self.event("Warning", "DeploymentConflict", str(e))
                self.set_condition("Ready", "False", "DeploymentConflict", str(e))
                self.set_condition("Scaling", "False", "DeploymentConflict", "nothing to scale")
                await self.flush_status()
                return max(5.0, spec.scaling.poll_seconds)
        current = self.current_replicas(dep)

        stats = await self.read(spec)
        now = time.monotonic()
        if current is not None:
            obs = Observation(
                # a paused queue's jobs wait for `kubeq resume`, not for more workers
                backlog=sum(s.backlog for s in stats if not s.paused) if stats else 0,
                in_flight=sum(s.in_flight for s in stats) if stats else 0,
                current_replicas=current,
                ok=stats is not None,
            )
            decision = decide(obs, spec.scaling, self.history, now)
            self.history = decision.history
            await self.apply(decision, current, stats)
        if stats is not None and spec.schedules:
            await self.run_schedules(spec, stats[0].now)
        self.update_numbers(spec, stats, dep)
        await self.flush_status()
        return spec.scaling.poll_seconds

    # -- Deployment ----------------------------------------------------------------------

    def deployment(self) -> DeploymentView | None:
        views = list(self.index.get((self.namespace, self.name), []))
        return views[0] if views else None

    def current_replicas(self, dep: DeploymentView | None) -> int | None:
        """The Deployment's replicas; our own last write until the watch shows it."""
        if dep is None:
            return self.expected
        if (
            self.expected is not None
            and dep.replicas != self.expected
            and time.monotonic() - self.expected_at < 10
        ):
            return self.expected
        self.expected = None
        return dep.replicas

    async def ensure_deployment(self, spec: TaskQueueSpec, dep: DeploymentView | None) -> None:
        name = deployment_name(self.name)
        live = await kube.get_deployment(self.namespace, name)
        if live is None:
            replicas = self.expected if self.expected is not None else spec.scaling.min_replicas
            manifest = build(self.name, self.namespace, spec, replicas)
            kopf.adopt(manifest, owner=self.body)
            try:
                await kube.create_deployment(self.namespace, manifest)
            except Exception as e:
                if not kube.is_conflict(e):
                    raise
            else:
                self.expected, self.expected_at = replicas, time.monotonic()
                self.event(
                    "Normal",
                    "DeploymentCreated",
                    f"created Deployment {name} with {replicas} replicas",
                )
            self.set_condition("Ready", "True", "DeploymentReady", f"Deployment {name} exists")
            return
        owners = live.get("metadata", {}).get("ownerReferences") or []
        uid = self.body.metadata.get("uid")
        if not any(o.get("uid") == uid and o.get("controller") for o in owners):
            raise DeploymentConflict(
                f"a Deployment named {name} exists and is not owned by this TaskQueue: rename "
                f"the TaskQueue or delete that Deployment (kubectl -n {self.namespace} delete "
                f"deployment {name})"
            )
        live_hash = (live.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_HASH)
        if live_hash == spec.worker_hash():
            return  # the index lags our own write
        manifest = build(self.name, self.namespace, spec, 0)
        await kube.json_patch_deployment(
            self.namespace,
            name,
            [
                {
                    "op": "add",
                    "path": "/metadata/annotations/" + ANNOTATION_HASH.replace("/", "~1"),
                    "value": spec.worker_hash(),
                },
                {"op": "replace", "path": "/spec/template", "value": manifest["spec"]["template"]},
            ],
        )
        self.event(
            "Normal",
            "WorkerSpecChanged",
            f"rolling Deployment {name} to the new worker "
            f"spec ({live_hash} -> {spec.worker_hash()})",
        )

    # -- Redis ---------------------------------------------------------------------------

    async def client(self, spec: TaskQueueSpec) -> redis.asyncio.Redis:
        ref = spec.redis.secret_ref
        now = time.monotonic()
        if ref is None:
            self.password = None
        elif now - self.password_at > SECRET_REFRESH or self.redis_failures:
            value = await kube.read_secret_key(self.namespace, ref.name, ref.key)
            if value is None:
                raise RedisConfigError(
                    "SecretNotFound",
                    f"spec.redis.secretRef: Secret {self.namespace}/{ref.name} or its key "
                    f"{ref.key!r} does not exist; create it (kubectl -n {self.namespace} create "
                    f"secret generic {ref.name} --from-literal={ref.key}=PASSWORD) or fix "
                    "spec.redis.secretRef",
                )
            self.password, self.password_at = value, now
        key = (spec.redis.url, self.password)
        if self.redis is None or self.redis_key != key:
            await self.close_redis()
            self.redis = connections.async_client(
                spec.redis.url, password=self.password, socket_timeout=5.0
            )
            self.redis_key = key
            self.app = None
        return self.redis

    async def read(self, spec: TaskQueueSpec) -> list[QueueStats] | None:
        """Every queue's numbers, or None (condition set, Event posted, metric counted)."""
        url = connections.redact(spec.redis.url)
        try:
            client = await self.client(spec)
            stats = await asyncio.wait_for(
                read_stats_async(client, spec.queues, spec.redis.prefix),
                timeout=max(5.0, spec.scaling.poll_seconds),
            )
        except RedisConfigError as e:
            self.redis_down(e.reason, str(e))
            return None
        except (RedisError, OSError, TimeoutError) as e:
            detail = str(e) or type(e).__name__
            self.redis_down(
                "RedisUnreachable",
                f"cannot read the queues at spec.redis.url={url}: {detail}; holding the "
                "replicas. Check that Redis runs and that spec.redis.url (and secretRef for a "
                "password, rediss:// for TLS) are right",
            )
            await self.close_redis()
            return None
        if self.redis_failures:
            self.event("Normal", "RedisReachable", f"reading {url} again")
        self.redis_failures = 0
        self.set_condition("RedisReachable", "True", "Connected", f"read {len(stats)} queues")
        return stats

    def redis_down(self, reason: str, message: str) -> None:
        metrics.redis_errors.labels(self.namespace, self.name).inc()
        if (
            self.redis_failures == 0
            or self.conditions.get("RedisReachable", {}).get("reason") != reason
        ):
            self.event("Warning", reason, message)
        self.redis_failures += 1
        self.set_condition("RedisReachable", "False", reason, message)

    async def close_redis(self) -> None:
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        self.redis = None
        self.redis_key = None
        if self.app is not None:
            with contextlib.suppress(Exception):
                self.app.close()
            self.app = None

    # -- scaling -------------------------------------------------------------------------

    async def apply(self, d: Decision, current: int, stats: list[QueueStats] | None) -> None:
        self.last_decision = d
        self.status["desiredReplicas"] = d.replicas
        metrics.workers_desired.labels(self.namespace, self.name).set(d.replicas)
        if d.reason == "RedisError":
            self.set_condition("Scaling", "False", "ScalingHeld", d.message)
        elif d.replicas == current:
            self.set_condition("Scaling", "True", d.reason, d.message)
        if d.replicas == current:
            return
        if d.replicas < current and stats is not None:
            await self.mark_pods(stats)
        await kube.scale_deployment(self.namespace, deployment_name(self.name), d.replicas)
        self.expected, self.expected_at = d.replicas, time.monotonic()
        self.status["lastScaleTime"] = _now_iso()
        metrics.scale_events.labels(self.namespace, self.name, d.direction).inc()
        self.event("Normal", d.reason, f"{current} -> {d.replicas} replicas: {d.message}")
        self.set_condition("Scaling", "True", d.reason, d.message)
        log.info(
            "%s/%s: %d -> %d replicas: %s",
            self.namespace,
            self.name,
            current,
            d.replicas,
            d.message,
        )

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
        await asyncio.gather(
            *(
                kube.annotate_pod(self.namespace, pod, {podcost.COST_ANNOTATION: str(cost)})
                for pod, cost in changes.items()
            ),
            return_exceptions=True,
        )
        await asyncio.sleep(COST_SETTLE_SECONDS)

    # -- schedules -----------------------------------------------------------------------

    async def run_schedules(self, spec: TaskQueueSpec, now: float) -> None:
        assert self.redis is not None

        async def enqueue(due: schedules.Due) -> None:
            app = self.schedule_app(spec)
            s = due.schedule
            call = Call(s.task, tuple(s.args), dict(s.kwargs), queue=s.queue, job_id=due.job_id)
            await asyncio.to_thread(app.enqueue_many, [call])
            self.event(
                "Normal",
                "ScheduleEnqueued",
                f"schedule {s.name}: enqueued {s.task} for "
                f"{datetime.fromtimestamp(due.at, UTC).isoformat()} (job {due.job_id})",
            )

        try:
            await schedules.tick(
                self.redis,
                spec.schedules,
                prefix=spec.redis.prefix,
                namespace=self.namespace,
                taskqueue=self.name,
                now=now,
                enqueue=enqueue,
            )
        except (RedisError, OSError) as e:
            self.logger.warning("schedules of %s/%s: %s", self.namespace, self.name, e)

    def schedule_app(self, spec: TaskQueueSpec) -> App:
        if self.app is None:
            self.app = App(spec.redis.url, password=self.password, prefix=spec.redis.prefix)
        return self.app

    # -- status, conditions, events ------------------------------------------------------

    def set_condition(self, type_: str, status: str, reason: str, message: str) -> None:
        old = self.conditions.get(type_)
        changed = old is None or old["status"] != status
        self.conditions[type_] = {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message[:1000],
            "lastTransitionTime": _now_iso()
            if changed or old is None
            else old["lastTransitionTime"],
            "observedGeneration": self.generation or 0,
        }

    def event(self, type_: str, reason: str, message: str) -> None:
        with contextlib.suppress(Exception):
            kopf.event(self.body, type=type_, reason=reason, message=message[:1000])

    def update_numbers(
        self, spec: TaskQueueSpec, stats: list[QueueStats] | None, dep: DeploymentView | None
    ) -> None:
        labels = (self.namespace, self.name)
        if stats is not None:
            workers: dict[str, int] = {}
            for s in stats:
                for w, n in s.workers.items():
                    workers[w] = workers.get(w, 0) + n
                metrics.backlog.labels(*labels, s.queue).set(s.backlog)
                metrics.in_flight.labels(*labels, s.queue).set(s.in_flight)
                metrics.oldest_age.labels(*labels, s.queue).set(s.oldest_ready_age)
            self.status.update(
                backlog=sum(s.backlog for s in stats),
                inFlight=sum(s.in_flight for s in stats),
                delayed=sum(s.delayed for s in stats),
                oldestJobAgeSeconds=round(max(s.oldest_ready_age for s in stats), 1),
                liveWorkers=len(workers),
                busyWorkers=sum(1 for n in workers.values() if n),
            )
        current = dep.current if dep is not None else 0
        self.status["replicas"] = current
        metrics.workers_current.labels(*labels).set(current)
        ready = (
            self.conditions.get("RedisReachable", {}).get("status") == "True" and dep is not None
        )
        if ready:
            self.set_condition(
                "Ready", "True", "Serving", f"{current} workers for queues {', '.join(spec.queues)}"
            )
        elif (
            "RedisReachable" in self.conditions
            and self.conditions["RedisReachable"]["status"] == "False"
        ):
            c = self.conditions["RedisReachable"]
            self.set_condition("Ready", "False", c["reason"], c["message"])

    async def flush_status(self, force: bool = False) -> None:
        status = {**self.status, "conditions": list(self.conditions.values())}
        # the oldest job's age grows every second while anything waits: sent along with other
        # changes, it does not cause a patch (and a watch event) by itself
        if {**status, AGE: None} == {**self.sent, AGE: None}:
            return

        def shape(s: dict[str, Any]) -> Any:
            return [(c["type"], c["status"], c["reason"]) for c in s.get("conditions", [])], {
                k: s.get(k) for k in ("desiredReplicas", "observedGeneration", "lastScaleTime")
            }

        now = time.monotonic()
        if not force and shape(status) == shape(self.sent) and now - self.sent_at < STATUS_INTERVAL:
            return
        await kube.patch_status(self.namespace, self.name, status)
        self.sent, self.sent_at = status, now

    async def close(self) -> None:
        await self.close_redis()
        if self.spec is not None:
            metrics.forget(self.namespace, self.name, list(self.spec.queues))
