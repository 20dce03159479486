"""Parse and validate a TaskQueue's spec into typed objects, with errors that name the field.

The CRD schema refuses what it can (types, ranges, min <= max, the shape of a cron line).
This module is the second line: it applies the defaults (so an object created before a
default existed still works), checks what the schema cannot (a cron line croniter rejects,
a queue name the key scheme rejects), and raises :class:`SpecError` whose message names
the field and says how to fix it. The handlers turn that into a condition, never a crash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from croniter import croniter

from kubeq import defaults
from kubeq.options import RateLimit
from kubeq.store import partitions, urls
from kubeq.store.keys import validate_queue_name

from .policy import ScalingSpec


class SpecError(ValueError):
    """A TaskQueue spec that cannot be acted on. ``field`` is the path, e.g. spec.queues."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str = defaults.PASSWORD_SECRET_KEY


@dataclass(frozen=True)
class RedisSpec:
    url: str
    secret_ref: SecretRef | None = None
    prefix: str = defaults.PREFIX


@dataclass(frozen=True)
class WorkerSpec:
    image: str
    tasks: str
    concurrency: int = defaults.CONCURRENCY
    pool: str = defaults.POOL
    resources: Mapping[str, Any] = field(default_factory=dict)
    env: tuple[Mapping[str, Any], ...] = ()
    termination_grace_period_seconds: int = defaults.TERMINATION_GRACE_SECONDS
    working_dir: str | None = None
    metrics_port: int = defaults.WORKER_METRICS_PORT
    """0: no /metrics, /healthz or probes."""
    lease_seconds: int | None = None
    service_account_name: str | None = None
    image_pull_policy: str | None = None
    pod_template: Mapping[str, Any] = field(default_factory=dict)
    """A partial PodTemplateSpec merged over kubeq's pod (see podtemplate.py)."""

    @property
    def drain_timeout(self) -> int:
        return max(1, self.termination_grace_period_seconds - defaults.DRAIN_MARGIN_SECONDS)


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    task: str
    queue: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskQueueSpec:
    redis: RedisSpec
    queues: tuple[str, ...]
    worker: WorkerSpec
    scaling: ScalingSpec
    schedules: tuple[Schedule, ...] = ()
    rate_limits: tuple[tuple[str, RateLimit], ...] = ()
    """``spec.rateLimits``: queue -> its fleet-wide rate, written to Redis by the operator."""
    partitions: int = defaults.PARTITIONS
    """``spec.partitions``: sub-queues each queue's jobs are spread over
    (kubeq.store.partitions)."""

    @property
    def physical_queues(self) -> list[str]:
        """What workers consume and stats read: each queue's partitions, or the queue."""
        return [p for q in self.queues for p in partitions.names(q, self.partitions)]

    def worker_hash(self) -> str:
        """Hash of everything that goes into the pod template: a change rolls the workers."""
        doc = {
            "redis": [self.redis.url, self.redis.secret_ref and vars(self.redis.secret_ref)],
            "prefix": self.redis.prefix,
            "queues": self.physical_queues,
            "worker": dict(vars(self.worker)),
        }
        blob = json.dumps(doc, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _get(obj: Mapping[str, Any], key: str, path: str, kind: type, default: Any = None) -> Any:
    value = obj.get(key, default)
    if value is None:
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SpecError(f"{path}.{key}", f"must be {kind.__name__}, got {value!r}")
    return value


def _int(obj: Mapping[str, Any], key: str, path: str, default: int, lo: int) -> int:
    value: int = _get(obj, key, path, int, default)
    if value < lo:
        raise SpecError(f"{path}.{key}", f"must be >= {lo}, got {value}")
    return value


def _grace_period(w: Mapping[str, Any]) -> int:
    key = "terminationGracePeriodSeconds"
    value = _int(w, key, "spec.worker", defaults.TERMINATION_GRACE_SECONDS, 1)
    least = defaults.MIN_TERMINATION_GRACE_SECONDS
    if value < least:
        raise SpecError(
            f"spec.worker.{key}",
            f"must be >= {least}, got {value}: a stopping worker drains for the grace period "
            f"minus {defaults.DRAIN_MARGIN_SECONDS} s, then hands unfinished jobs back; "
            f"set it to {least} or more",
        )
    return value


_URL_SECRETS = {"password", "sentinel_password"}
"""Query parameters of a Redis URL that carry a password."""


def _redis_url(redis_doc: Mapping[str, Any]) -> str:
    url: str = _get(redis_doc, "url", "spec.redis", str, "")
    if not url.startswith(
        (
            *("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://"),
            *("redis+cluster://", "rediss+cluster://"),
        )
    ):
        raise SpecError(
            "spec.redis.url",
            "must be a redis://, rediss:// (TLS), unix://, redis+sentinel:// or "
            f"redis+cluster:// URL, got {urls.redact(url)!r}",
        )
    try:
        urls.parse_sentinel_url(url)
        urls.parse_cluster_url(url)
    except ValueError as exc:
        raise SpecError("spec.redis.url", str(exc)) from None
    parts = urlsplit(url)
    in_query = any(k.lower() in _URL_SECRETS for k, _ in parse_qsl(parts.query))
    if parts.password is not None or in_query:
        # it would be copied into the worker Deployment's env, readable by anyone who can
        # read Deployments; the dashboard chart refuses it the same way
        raise SpecError(
            "spec.redis.url",
            f"contains a password ({urls.redact(url)}); remove it from the URL, put it "
            "in a Secret and name that Secret in spec.redis.secretRef (name, key)",
        )
    return url


def _partitions(spec: Mapping[str, Any]) -> int:
    n = _int(spec, "partitions", "spec", defaults.PARTITIONS, 1)
    if n > defaults.PARTITIONS_MAX:
        raise SpecError(
            "spec.partitions", f"must be <= {defaults.PARTITIONS_MAX}, got {n}; lower it"
        )
    return n


def parse(spec: Mapping[str, Any]) -> TaskQueueSpec:
    """A TaskQueue's ``spec`` as typed objects; raises SpecError naming the bad field."""
    redis_doc = _get(spec, "redis", "spec", dict, {})
    url = _redis_url(redis_doc)
    secret_doc = _get(redis_doc, "secretRef", "spec.redis", dict)
    secret_ref = None
    if secret_doc is not None:
        name = _get(secret_doc, "name", "spec.redis.secretRef", str, "")
        if not name:
            raise SpecError("spec.redis.secretRef.name", "name the Secret holding the password")
        secret_ref = SecretRef(
            name, _get(secret_doc, "key", "spec.redis.secretRef", str, defaults.PASSWORD_SECRET_KEY)
        )
    prefix = _get(redis_doc, "prefix", "spec.redis", str, defaults.PREFIX)
    redis = RedisSpec(url, secret_ref, prefix)

    queues_doc = _get(spec, "queues", "spec", list, [defaults.QUEUE])
    if not queues_doc:
        raise SpecError("spec.queues", "list at least one queue, e.g. [default]")
    queues: list[str] = []
    for i, q in enumerate(queues_doc):
        try:
            queues.append(validate_queue_name(q))
        except (ValueError, TypeError) as e:
            raise SpecError(f"spec.queues[{i}]", str(e)) from None

    worker = _worker(_get(spec, "worker", "spec", dict, {}))

    s = _get(spec, "scaling", "spec", dict, {})
    down = _get(s, "scaleDown", "spec.scaling", dict, {})
    path = "spec.scaling"
    dpath = "spec.scaling.scaleDown"
    lo = _int(s, "minReplicas", path, defaults.MIN_REPLICAS, 0)
    hi = _int(s, "maxReplicas", path, defaults.MAX_REPLICAS, 0)
    if lo > hi:
        raise SpecError(
            "spec.scaling.minReplicas", f"must be <= maxReplicas ({lo} > {hi}); lower it"
        )
    poll = _get(s, "pollSeconds", path, float, float(defaults.POLL_SECONDS))
    if poll <= 0:
        raise SpecError("spec.scaling.pollSeconds", f"must be > 0, got {poll}")
    up = _get(s, "scaleUp", path, dict, {})
    upath = "spec.scaling.scaleUp"
    target_wait = _get(s, "targetWaitSeconds", path, float)
    if target_wait is not None and target_wait <= 0:
        raise SpecError("spec.scaling.targetWaitSeconds", f"must be > 0 seconds, got {target_wait}")
    up_step = _get(up, "maxPodsPerStep", upath, int)
    if up_step is not None and up_step < 1:
        raise SpecError(f"{upath}.maxPodsPerStep", f"must be >= 1 (or unset), got {up_step}")
    fallback = _get(s, "fallbackReplicas", path, int)
    if fallback is not None and not lo <= fallback <= hi:
        raise SpecError(
            "spec.scaling.fallbackReplicas",
            f"must be within minReplicas..maxReplicas ({lo}..{hi}), got {fallback}",
        )
    scaling = ScalingSpec(
        target_wait_seconds=target_wait,
        scale_up_max_pods_per_step=up_step,
        scale_up_period_seconds=float(
            _int(up, "periodSeconds", upath, defaults.SCALE_UP_PERIOD_SECONDS, 0)
        ),
        fallback_replicas=fallback,
        min_replicas=lo,
        max_replicas=hi,
        jobs_per_replica=_int(s, "jobsPerReplica", path, worker.concurrency, 1),
        activation_backlog=_int(s, "activationBacklog", path, defaults.ACTIVATION_BACKLOG, 1),
        poll_seconds=poll,
        stabilization_seconds=float(
            _int(down, "stabilizationSeconds", dpath, defaults.STABILIZATION_SECONDS, 0)
        ),
        max_pods_per_step=_int(down, "maxPodsPerStep", dpath, defaults.MAX_PODS_PER_STEP, 1),
        period_seconds=float(_int(down, "periodSeconds", dpath, defaults.PERIOD_SECONDS, 0)),
        idle_seconds_before_zero=float(
            _int(s, "idleSecondsBeforeZero", path, defaults.IDLE_SECONDS_BEFORE_ZERO, 0)
        ),
    )

    schedules: list[Schedule] = []
    seen: set[str] = set()
    for i, doc in enumerate(_get(spec, "schedules", "spec", list, [])):
        p = f"spec.schedules[{i}]"
        if not isinstance(doc, dict):
            raise SpecError(p, "must be an object with name, cron and task")
        name = _get(doc, "name", p, str, "")
        if not name or name in seen:
            raise SpecError(f"{p}.name", f"give each schedule a unique name (got {name!r})")
        seen.add(name)
        cron = _get(doc, "cron", p, str, "")
        if not croniter.is_valid(cron):
            raise SpecError(
                f"{p}.cron",
                f"{cron!r} is not a valid cron line; use 5 fields, e.g. '*/5 * * * *'",
            )
        task = _get(doc, "task", p, str, "")
        if not task:
            raise SpecError(f"{p}.task", "name the registered task to enqueue")
        queue = _get(doc, "queue", p, str, queues[0])
        try:
            validate_queue_name(queue)
        except (ValueError, TypeError) as e:
            raise SpecError(f"{p}.queue", str(e)) from None
        schedules.append(
            Schedule(
                name=name,
                cron=cron,
                task=task,
                queue=queue,
                args=tuple(_get(doc, "args", p, list, [])),
                kwargs=_get(doc, "kwargs", p, dict, {}),
            )
        )
    rate_limits: list[tuple[str, RateLimit]] = []
    for q, text in _get(spec, "rateLimits", "spec", dict, {}).items():
        path = f"spec.rateLimits.{q}"
        if q not in queues:
            raise SpecError(path, f"{q!r} is not one of spec.queues ({', '.join(queues)})")
        try:
            rate_limits.append((q, RateLimit.parse(text, "the rate")))
        except ValueError as e:
            raise SpecError(path, str(e)) from None
    return TaskQueueSpec(
        redis,
        tuple(queues),
        worker,
        scaling,
        tuple(schedules),
        tuple(rate_limits),
        _partitions(spec),
    )


# -- spec.worker ----------------------------------------------------------------------------

_WORKER_OWNED = {
    "image": "spec.worker.image",
    "command": "spec.worker.tasks and the other spec.worker fields",
    "args": "spec.worker.tasks and the other spec.worker fields",
    "env": "spec.worker.env",
    "resources": "spec.worker.resources",
    "workingDir": "spec.worker.workingDir",
    "imagePullPolicy": "spec.worker.imagePullPolicy",
}
"""Fields of the worker container kubeq sets from named fields: a podTemplate may not set them."""
_POD_OWNED = {
    "terminationGracePeriodSeconds": "spec.worker.terminationGracePeriodSeconds",
    "serviceAccountName": "spec.worker.serviceAccountName",
}
_OWNED_LABELS = (
    "kubeq.dev/taskqueue",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
)
_OWNED_ANNOTATIONS = ("kubeq.dev/worker-hash",)


def _worker(w: Mapping[str, Any]) -> WorkerSpec:
    path = "spec.worker"
    image = _get(w, "image", path, str, "")
    if not image:
        raise SpecError(
            "spec.worker.image",
            "name the worker image (built FROM the kubeq image with your tasks module, see "
            "docs/worker-image.md); there is no default",
        )
    tasks = _get(w, "tasks", path, str, "")
    if not tasks:
        raise SpecError("spec.worker.tasks", "name the module whose @app.task functions run")
    pool = _get(w, "pool", path, str, defaults.POOL)
    if pool not in defaults.POOLS:
        raise SpecError("spec.worker.pool", f"must be thread, process or async, got {pool!r}")
    env = _get(w, "env", path, list, [])
    for i, var in enumerate(env):
        _env_var(var, f"spec.worker.env[{i}]")
    resources = _get(w, "resources", path, dict, {})
    _resources(resources, "spec.worker.resources")
    metrics_port = _int(w, "metricsPort", path, defaults.WORKER_METRICS_PORT, 0)
    if metrics_port > 65535:
        raise SpecError(
            "spec.worker.metricsPort", f"must be a port (1-65535, 0: off), got {metrics_port}"
        )
    return WorkerSpec(
        image=image,
        tasks=tasks,
        concurrency=_int(w, "concurrency", path, defaults.CONCURRENCY, 1),
        pool=pool,
        resources=resources,
        env=tuple(env),
        termination_grace_period_seconds=_grace_period(w),
        working_dir=_get(w, "workingDir", path, str),
        metrics_port=metrics_port,
        lease_seconds=_get(w, "leaseSeconds", path, int),
        service_account_name=_get(w, "serviceAccountName", path, str),
        image_pull_policy=_get(w, "imagePullPolicy", path, str),
        pod_template=_pod_template(_get(w, "podTemplate", path, dict, {})),
    )


def _env_var(var: Any, path: str) -> None:
    if not isinstance(var, dict) or not isinstance(var.get("name"), str) or not var["name"]:
        raise SpecError(path, "each entry needs a name (a Kubernetes EnvVar)")
    if "value" in var and not isinstance(var["value"], str):
        raise SpecError(f"{path}.value", f"must be a string (quote it), got {var['value']!r}")
    if "value" in var and "valueFrom" in var:
        raise SpecError(path, "set value or valueFrom, not both")


def _resources(doc: Mapping[str, Any], path: str) -> None:
    for key, value in doc.items():
        if key not in ("requests", "limits", "claims"):
            raise SpecError(f"{path}.{key}", "unknown field; use requests and limits")
        if key == "claims":
            continue
        if not isinstance(value, dict):
            raise SpecError(f"{path}.{key}", "must be a map such as {cpu: 500m, memory: 1Gi}")
        for name, qty in value.items():
            if isinstance(qty, bool) or not isinstance(qty, (str, int, float)):
                raise SpecError(f"{path}.{key}.{name}", f"must be a quantity, got {qty!r}")


def _pod_template(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Check a podTemplate leaves kubeq's own fields alone; the API server checks the rest
    when the operator writes the Deployment (its error lands in the Ready condition)."""
    path = "spec.worker.podTemplate"
    meta = _get(doc, "metadata", path, dict, {})
    for key in meta:
        if key not in ("labels", "annotations"):
            raise SpecError(f"{path}.metadata.{key}", "only labels and annotations can be set")
    for key, owned in (("labels", _OWNED_LABELS), ("annotations", _OWNED_ANNOTATIONS)):
        items = _get(meta, key, f"{path}.metadata", dict, {})
        for name, value in items.items():
            if name in owned:
                raise SpecError(f"{path}.metadata.{key}.{name}", "is set by kubeq; remove it")
            if not isinstance(value, str):
                raise SpecError(f"{path}.metadata.{key}.{name}", f"must be a string, got {value!r}")
    pod = _get(doc, "spec", path, dict, {})
    for key, instead in _POD_OWNED.items():
        if key in pod:
            raise SpecError(f"{path}.spec.{key}", f"set {instead} instead")
    containers = _get(pod, "containers", f"{path}.spec", list, [])
    for i, c in enumerate(containers):
        cpath = f"{path}.spec.containers[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise SpecError(cpath, "each container needs a name (worker for kubeq's own)")
        if c["name"] != "worker":
            continue
        for key, instead in _WORKER_OWNED.items():
            if key in c:
                raise SpecError(f"{cpath}.{key}", f"set {instead} instead")
    unknown = set(doc) - {"metadata", "spec"}
    if unknown:
        raise SpecError(f"{path}.{sorted(unknown)[0]}", "a podTemplate has metadata and spec only")
    return dict(doc)
