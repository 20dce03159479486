"""Parse and validate a TaskQueue's spec into typed objects, with errors that name the field.

The CRD schema refuses what it can (types, ranges, min <= max, the shape of a cron line).
This module is the second line: it applies the defaults (so an object created before a
default existed still works), checks what the schema cannot (a cron line or time zone the
schedule model rejects: ``kubeq_operator.schedules.parse``,
a queue name the key scheme rejects), and raises :class:`SpecError` whose message names
the field and says how to fix it. The handlers turn that into a condition, never a crash.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kubeq import defaults
from kubeq.options import RateLimit
from kubeq.schedules import Schedule
from kubeq.store import partitions, urls
from kubeq.store.fairness import check_weight
from kubeq.store.keys import validate_queue_name
from kubeq_operator import schedules as operator_schedules
from kubeq_operator.policy import ScalingSpec
from kubeq_operator.poolspec import PoolSpec, parse_pools
from kubeq_operator.rolloutspec import ROLLING_UPDATE, RolloutSpec, parse_rollout
from kubeq_operator.scalingspec import parse_scaling
from kubeq_operator.specfields import SpecError, get_field, get_int
from kubeq_operator.workerspec import WorkerSpec, parse_worker

__all__ = [
    "RedisSpec",
    "Schedule",
    "SecretRef",
    "SpecError",
    "TaskQueueSpec",
    "WorkerSpec",
    "parse",
]


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
    fairness: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    """``spec.fairness``: queue -> the weights of its fairness keys, written by the operator."""
    pools: tuple[PoolSpec, ...] = ()
    """``spec.pools``: worker pools, each its own Deployment (poolspec.py)."""
    rollout: RolloutSpec = ROLLING_UPDATE
    """``spec.rollout``: rolling update, or one Deployment per version (rolloutspec.py)."""

    @property
    def physical_queues(self) -> list[str]:
        """What workers consume and stats read: each queue's partitions, or the queue."""
        return [p for q in self.queues for p in partitions.names(q, self.partitions)]

    def of_pool(self, pool: PoolSpec) -> TaskQueueSpec:
        """This spec as ``pool``'s Deployment sees it: its queues, worker and scaling."""
        return replace(
            self,
            queues=pool.logical_queues(self.queues),
            worker=pool.worker,
            scaling=pool.scaling,
            pools=(),
        )

    def worker_hash(self) -> str:
        """Hash of everything that goes into the pod template: a change rolls the workers.
        (Computed once per spec: the loop compares it with the Deployment's every pass.)"""
        return self._worker_hash

    @functools.cached_property
    def _worker_hash(self) -> str:
        doc = {
            "redis": [self.redis.url, self.redis.secret_ref and vars(self.redis.secret_ref)],
            "prefix": self.redis.prefix,
            "queues": self.physical_queues,
            "worker": dict(vars(self.worker)),
        }
        blob = json.dumps(doc, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


_URL_SECRETS = {"password", "sentinel_password"}
"""Query parameters of a Redis URL that carry a password."""


def _redis_url(redis_doc: Mapping[str, Any]) -> str:
    url: str = get_field(redis_doc, "url", "spec.redis", str, "")
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
    n = get_int(spec, "partitions", "spec", defaults.PARTITIONS, 1)
    if n > defaults.PARTITIONS_MAX:
        raise SpecError(
            "spec.partitions", f"must be <= {defaults.PARTITIONS_MAX}, got {n}; lower it"
        )
    return n


def parse(spec: Mapping[str, Any]) -> TaskQueueSpec:
    """A TaskQueue's ``spec`` as typed objects; raises SpecError naming the bad field."""
    redis_doc = get_field(spec, "redis", "spec", dict, {})
    url = _redis_url(redis_doc)
    secret_doc = get_field(redis_doc, "secretRef", "spec.redis", dict)
    secret_ref = None
    if secret_doc is not None:
        name = get_field(secret_doc, "name", "spec.redis.secretRef", str, "")
        if not name:
            raise SpecError("spec.redis.secretRef.name", "name the Secret holding the password")
        path = "spec.redis.secretRef"
        key = get_field(secret_doc, "key", path, str, defaults.PASSWORD_SECRET_KEY)
        secret_ref = SecretRef(name, key)
    prefix = get_field(redis_doc, "prefix", "spec.redis", str, defaults.PREFIX)
    redis = RedisSpec(url, secret_ref, prefix)

    queues_doc = get_field(spec, "queues", "spec", list, [defaults.QUEUE])
    if not queues_doc:
        raise SpecError("spec.queues", "list at least one queue, e.g. [default]")
    queues: list[str] = []
    for i, q in enumerate(queues_doc):
        try:
            queues.append(validate_queue_name(q))
        except (ValueError, TypeError) as e:
            raise SpecError(f"spec.queues[{i}]", str(e)) from None

    worker = parse_worker(get_field(spec, "worker", "spec", dict, {}))

    scaling = parse_scaling(get_field(spec, "scaling", "spec", dict, {}), worker.concurrency)

    schedules = operator_schedules.parse(spec, queues[0])
    rate_limits: list[tuple[str, RateLimit]] = []
    for q, text in get_field(spec, "rateLimits", "spec", dict, {}).items():
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
        schedules,
        tuple(rate_limits),
        _partitions(spec),
        _fairness(spec, queues),
        parse_pools(spec, worker, queues),
        parse_rollout(get_field(spec, "rollout", "spec", dict, {})),
    )


def _fairness(spec: Mapping[str, Any], queues: list[str]) -> tuple[Any, ...]:
    """``spec.fairness``: {queue: {key: weight}}, each checked (docs/fairness.md)."""
    out = []
    for q, weights in get_field(spec, "fairness", "spec", dict, {}).items():
        path = f"spec.fairness.{q}"
        if q not in queues:
            raise SpecError(path, f"{q!r} is not one of spec.queues ({', '.join(queues)})")
        if not isinstance(weights, dict):
            raise SpecError(path, f"must map fairness keys to weights, got {weights!r}")
        try:
            out.append((q, tuple(sorted((k, check_weight(k, w)) for k, w in weights.items()))))
        except ValueError as e:
            raise SpecError(path, str(e)) from None
    return tuple(out)


# -- spec.worker ----------------------------------------------------------------------------
