"""``spec.worker`` of a TaskQueue: the worker pods' image, tasks, pool, resources, env, grace
period and pod template overrides, parsed and checked (errors name the field)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeq import defaults
from kubeq_operator.specfields import SpecError, get_field, get_int


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


def _grace_period(w: Mapping[str, Any]) -> int:
    key = "terminationGracePeriodSeconds"
    value = get_int(w, key, "spec.worker", defaults.TERMINATION_GRACE_SECONDS, 1)
    least = defaults.MIN_TERMINATION_GRACE_SECONDS
    if value < least:
        raise SpecError(
            f"spec.worker.{key}",
            f"must be >= {least}, got {value}: a stopping worker drains for the grace period "
            f"minus {defaults.DRAIN_MARGIN_SECONDS} s, then hands unfinished jobs back; "
            f"set it to {least} or more",
        )
    return value


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
    "kubeq.dev/pool",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
)
_OWNED_ANNOTATIONS = ("kubeq.dev/worker-hash",)


def parse_worker(w: Mapping[str, Any]) -> WorkerSpec:
    path = "spec.worker"
    image = get_field(w, "image", path, str, "")
    if not image:
        raise SpecError(
            "spec.worker.image",
            "name the worker image (built FROM the kubeq image with your tasks module, see "
            "docs/worker-image.md); there is no default",
        )
    tasks = get_field(w, "tasks", path, str, "")
    if not tasks:
        raise SpecError("spec.worker.tasks", "name the module whose @app.task functions run")
    pool = get_field(w, "pool", path, str, defaults.POOL)
    if pool not in defaults.POOLS:
        raise SpecError("spec.worker.pool", f"must be thread, process or async, got {pool!r}")
    env = get_field(w, "env", path, list, [])
    for i, var in enumerate(env):
        _env_var(var, f"spec.worker.env[{i}]")
    resources = get_field(w, "resources", path, dict, {})
    check_resources(resources, "spec.worker.resources")
    metrics_port = get_int(w, "metricsPort", path, defaults.WORKER_METRICS_PORT, 0)
    if metrics_port > 65535:
        raise SpecError(
            "spec.worker.metricsPort", f"must be a port (1-65535, 0: off), got {metrics_port}"
        )
    return WorkerSpec(
        image=image,
        tasks=tasks,
        concurrency=get_int(w, "concurrency", path, defaults.CONCURRENCY, 1),
        pool=pool,
        resources=resources,
        env=tuple(env),
        termination_grace_period_seconds=_grace_period(w),
        working_dir=get_field(w, "workingDir", path, str),
        metrics_port=metrics_port,
        lease_seconds=get_field(w, "leaseSeconds", path, int),
        service_account_name=get_field(w, "serviceAccountName", path, str),
        image_pull_policy=get_field(w, "imagePullPolicy", path, str),
        pod_template=check_pod_template(
            get_field(w, "podTemplate", path, dict, {}), "spec.worker.podTemplate"
        ),
    )


def _env_var(var: Any, path: str) -> None:
    if not isinstance(var, dict) or not isinstance(var.get("name"), str) or not var["name"]:
        raise SpecError(path, "each entry needs a name (a Kubernetes EnvVar)")
    if "value" in var and not isinstance(var["value"], str):
        raise SpecError(f"{path}.value", f"must be a string (quote it), got {var['value']!r}")
    if "value" in var and "valueFrom" in var:
        raise SpecError(path, "set value or valueFrom, not both")


def check_resources(doc: Mapping[str, Any], path: str) -> None:
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


def check_pod_template(doc: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Check a podTemplate leaves kubeq's own fields alone; the API server checks the rest
    when the operator writes the Deployment (its error lands in the Ready condition)."""
    meta = get_field(doc, "metadata", path, dict, {})
    for key in meta:
        if key not in ("labels", "annotations"):
            raise SpecError(f"{path}.metadata.{key}", "only labels and annotations can be set")
    for key, owned in (("labels", _OWNED_LABELS), ("annotations", _OWNED_ANNOTATIONS)):
        items = get_field(meta, key, f"{path}.metadata", dict, {})
        for name, value in items.items():
            if name in owned:
                raise SpecError(f"{path}.metadata.{key}.{name}", "is set by kubeq; remove it")
            if not isinstance(value, str):
                raise SpecError(f"{path}.metadata.{key}.{name}", f"must be a string, got {value!r}")
    pod = get_field(doc, "spec", path, dict, {})
    for key, instead in _POD_OWNED.items():
        if key in pod:
            raise SpecError(f"{path}.spec.{key}", f"set {instead} instead")
    containers = get_field(pod, "containers", f"{path}.spec", list, [])
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
