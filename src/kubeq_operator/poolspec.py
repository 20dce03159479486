"""``spec.pools[]`` of a TaskQueue: worker pools, each its own Deployment with its own pod
shape and scaling, parsed and checked (errors name the field, e.g. ``spec.pools[1].tasks[0]``).

A pool serves ``<queue>@<pool>`` for each of the TaskQueue's queues (the jobs routed to it at
enqueue: ``kubeq.client.pools``) and the queues it declares itself, which no other pool and
not the TaskQueue's own workers serve. Its worker is the TaskQueue's ``spec.worker`` with the
pool's fields over it; its scaling the TaskQueue's ``spec.scaling`` with the pool's over it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from kubeq.checks import WORKER_POOL_NAME
from kubeq.client.pools import pool_queue
from kubeq.store.keys import validate_queue_name
from kubeq_operator import podtemplate
from kubeq_operator.policy import ScalingSpec
from kubeq_operator.scalingspec import parse_scaling
from kubeq_operator.specfields import SpecError, get_field, get_int
from kubeq_operator.workerspec import WorkerSpec, check_pod_template, check_resources

MAX_POOLS = 20
MODES = ("Deployment", "Job")
"""How a pool runs its workers: long-lived pods of a Deployment, or one Kubernetes Job (one
pod) per job (``jobmode``)."""
JOB_TTL_SECONDS = 300
"""Default ``spec.pools[].job.ttlSecondsAfterFinished``: finished Jobs are removed after it."""
POD_FIELDS = ("nodeSelector", "tolerations", "affinity", "priorityClassName")
"""Scheduling fields a pool sets on its pods directly (merged over its podTemplate)."""
FIELDS = frozenset(
    {"name", "mode", "tasks", "queues", "image", "concurrency", "resources", "env"}
    | {"podTemplate", "scaling", "job", *POD_FIELDS}
)
_POD_KINDS: dict[str, type] = {
    "nodeSelector": dict,
    "tolerations": list,
    "affinity": dict,
    "priorityClassName": str,
}


@dataclass(frozen=True)
class PoolSpec:
    name: str
    worker: WorkerSpec
    """The TaskQueue's worker with this pool's fields over it."""
    scaling: ScalingSpec
    tasks: tuple[str, ...] = ()
    """Task names routed to this pool at enqueue without naming it."""
    queues: tuple[str, ...] = ()
    """Queues this pool alone serves (besides ``<queue>@<name>`` of the TaskQueue's)."""
    mode: str = "Deployment"
    job_ttl_seconds: int = JOB_TTL_SECONDS
    """Job mode: ``ttlSecondsAfterFinished`` of each Job (Kubernetes removes it then)."""

    def logical_queues(self, taskqueue_queues: tuple[str, ...]) -> tuple[str, ...]:
        """Every queue the pool's workers consume, before partitions."""
        return (*(pool_queue(q, self.name) for q in taskqueue_queues), *self.queues)


def parse_pools(
    spec: Mapping[str, Any], worker: WorkerSpec, queues: list[str]
) -> tuple[PoolSpec, ...]:
    """``spec.pools``, each checked, and checked against each other and ``spec.queues``."""
    docs = get_field(spec, "pools", "spec", list, [])
    if len(docs) > MAX_POOLS:
        raise SpecError("spec.pools", f"at most {MAX_POOLS} pools, got {len(docs)}")
    scaling_doc = get_field(spec, "scaling", "spec", dict, {})
    pools: list[PoolSpec] = []
    names: dict[str, int] = {}
    task_pool: dict[str, str] = {}
    queue_pool: dict[str, str] = {}
    for i, doc in enumerate(docs):
        path = f"spec.pools[{i}]"
        if not isinstance(doc, dict):
            raise SpecError(path, f"must be an object with a name, got {doc!r}")
        pool = _parse_pool(doc, path, worker, scaling_doc)
        if pool.name in names:
            raise SpecError(
                f"{path}.name",
                f"pool {pool.name!r} is declared twice (spec.pools[{names[pool.name]}] too); "
                "give each pool its own name",
            )
        names[pool.name] = i
        for j, task in enumerate(pool.tasks):
            other = task_pool.setdefault(task, pool.name)
            if other != pool.name:
                raise SpecError(
                    f"{path}.tasks[{j}]",
                    f"task {task!r} is in pool {other!r} too; a task runs in one pool: "
                    "remove it from one of them",
                )
        for j, q in enumerate(pool.queues):
            if q in queues:
                raise SpecError(
                    f"{path}.queues[{j}]",
                    f"queue {q!r} is in spec.queues, which the TaskQueue's own workers serve; "
                    "remove it from one of them",
                )
            other = queue_pool.setdefault(q, pool.name)
            if other != pool.name:
                raise SpecError(
                    f"{path}.queues[{j}]",
                    f"queue {q!r} is served by pool {other!r} too; remove it from one of them",
                )
        pools.append(pool)
    return tuple(pools)


def _parse_pool(
    doc: Mapping[str, Any], path: str, worker: WorkerSpec, scaling_doc: Mapping[str, Any]
) -> PoolSpec:
    unknown = sorted(set(doc) - FIELDS)
    if unknown:
        raise SpecError(
            f"{path}.{unknown[0]}",
            f"unknown field; a pool has {', '.join(sorted(FIELDS))}",
        )
    name = get_field(doc, "name", path, str, "")
    if not WORKER_POOL_NAME.fullmatch(name):
        raise SpecError(
            f"{path}.name",
            f"must be a DNS label (1-63 lower-case letters, digits and '-'), got {name!r}",
        )
    mode = get_field(doc, "mode", path, str, "Deployment")
    if mode not in MODES:
        raise SpecError(f"{path}.mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    tasks = get_field(doc, "tasks", path, list, [])
    for j, task in enumerate(tasks):
        if not isinstance(task, str) or not task:
            raise SpecError(f"{path}.tasks[{j}]", f"must be a task name, got {task!r}")
    own_queues = get_field(doc, "queues", path, list, [])
    for j, q in enumerate(own_queues):
        try:
            validate_queue_name(q)
        except (ValueError, TypeError) as e:
            raise SpecError(f"{path}.queues[{j}]", str(e)) from None
        if "@" in q or "#" in q:
            raise SpecError(f"{path}.queues[{j}]", f"must be a plain queue name, got {q!r}")
    pool_worker = _worker(doc, path, worker)
    job = get_field(doc, "job", path, dict, {})
    if job and mode != "Job":
        raise SpecError(
            f"{path}.job", "only a pool with mode: Job runs Jobs; remove it or set mode"
        )
    unknown_job = sorted(set(job) - {"ttlSecondsAfterFinished"})
    if unknown_job:
        raise SpecError(
            f"{path}.job.{unknown_job[0]}", "unknown field; job has ttlSecondsAfterFinished"
        )
    return PoolSpec(
        name=name,
        worker=pool_worker,
        scaling=_scaling(doc, path, scaling_doc, pool_worker.concurrency),
        tasks=tuple(tasks),
        queues=tuple(own_queues),
        mode=mode,
        job_ttl_seconds=get_int(job, "ttlSecondsAfterFinished", f"{path}.job", JOB_TTL_SECONDS, 0),
    )


def _worker(doc: Mapping[str, Any], path: str, worker: WorkerSpec) -> WorkerSpec:
    """The TaskQueue's worker with the pool's image, concurrency, resources, env, pod fields
    and podTemplate over it."""
    image = get_field(doc, "image", path, str, worker.image) or worker.image
    concurrency = get_int(doc, "concurrency", path, worker.concurrency, 1)
    resources = get_field(doc, "resources", path, dict, None)
    if resources is not None:
        check_resources(resources, f"{path}.resources")
    env = list(worker.env)
    for j, var in enumerate(get_field(doc, "env", path, list, [])):
        if not isinstance(var, dict) or not isinstance(var.get("name"), str) or not var["name"]:
            raise SpecError(f"{path}.env[{j}]", "each entry needs a name (a Kubernetes EnvVar)")
        env = [e for e in env if e.get("name") != var["name"]] + [var]
    overlay = check_pod_template(
        get_field(doc, "podTemplate", path, dict, {}), f"{path}.podTemplate"
    )
    scheduling: dict[str, Any] = {}
    for key, kind in _POD_KINDS.items():
        value = get_field(doc, key, path, kind)
        if value is not None:
            scheduling[key] = value
    template = podtemplate.merge(worker.pod_template, overlay)
    if scheduling:
        template = podtemplate.merge(template, {"spec": scheduling})
    return replace(
        worker,
        image=image,
        concurrency=concurrency,
        resources=resources if resources is not None else worker.resources,
        env=tuple(env),
        pod_template=template,
    )


def _scaling(
    doc: Mapping[str, Any], path: str, base: Mapping[str, Any], concurrency: int
) -> ScalingSpec:
    """The TaskQueue's spec.scaling with the pool's over it (scaleUp/scaleDown key by key)."""
    own = get_field(doc, "scaling", path, dict, {})
    if "pollSeconds" in own:
        raise SpecError(
            f"{path}.scaling.pollSeconds",
            "one loop reads every pool: set spec.scaling.pollSeconds instead",
        )
    merged = podtemplate.merge(base, own)
    return parse_scaling(merged, concurrency, f"{path}.scaling")
