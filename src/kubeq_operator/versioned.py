"""The names and manifests of versioned worker Deployments (``spec.rollout.strategy:
Versioned``; plain dicts, no API calls here), of the TaskQueue's own workers and of each of
its Deployment-mode pools.

A version is the first ``VERSION_CHARS`` hex of the worker hash (of the spec as the
Deployment sees it: ``TaskQueueSpec.of_pool`` for a pool): every change of the pod template
is a new version. Its Deployment is the unversioned one (``deployment.build``,
``pooldeployment.build``) renamed ``<its name>-v<version>`` (``<name>-worker-v<version>``,
``<name>-<pool>-pool-v<version>``), with ``kubeq.dev/version`` in its labels, its selector and
its pods' labels (a selector is immutable, so no version ever adopts another's pods), and
``KUBEQ_VERSION`` in the worker's env: the worker reads its version's retirement from Redis
with it (kubeq.worker.upkeep).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kubeq.store.versions import VERSION_ENV
from kubeq_operator.crd import LABEL_VERSION
from kubeq_operator.deployment import CONTAINER
from kubeq_operator.deployment import build as build_worker
from kubeq_operator.names import deployment_name, pool_deployment_name
from kubeq_operator.policy import Observation
from kubeq_operator.pooldeployment import build as build_pool_unversioned
from kubeq_operator.poolspec import PoolSpec
from kubeq_operator.spec import TaskQueueSpec

VERSION_CHARS = 8


def version_of(spec: TaskQueueSpec) -> str:
    """The version of ``spec``'s worker pods."""
    return spec.worker_hash()[:VERSION_CHARS]


def versioned_name(taskqueue: str, version: str) -> str:
    """A version's Deployment: ``<name>-worker-v<version>``."""
    return f"{deployment_name(taskqueue)}-v{version}"


def worker_deployment(taskqueue: str, spec: TaskQueueSpec | None) -> str:
    """The Deployment the loop creates and scales: the newest version's, or the only one."""
    if spec is not None and spec.rollout.versioned:
        return versioned_name(taskqueue, version_of(spec))
    return deployment_name(taskqueue)


def pool_deployment(taskqueue: str, pool: str, pspec: TaskQueueSpec) -> str:
    """The Deployment a pool's pass creates and scales (``pspec``: the spec as the pool sees
    it): its newest version's, ``<name>-<pool>-pool-v<version>``, or the only one."""
    name = pool_deployment_name(taskqueue, pool)
    return f"{name}-v{version_of(pspec)}" if pspec.rollout.versioned else name


def build(taskqueue: str, namespace: str, spec: TaskQueueSpec, replicas: int) -> dict[str, Any]:
    """The Deployment manifest of ``spec``'s version (no ownerReference yet)."""
    return with_version(build_worker(taskqueue, namespace, spec, replicas), version_of(spec))


def build_pool(
    taskqueue: str, namespace: str, spec: TaskQueueSpec, pool: PoolSpec, replicas: int
) -> dict[str, Any]:
    """The Deployment manifest of ``pool``'s version (no ownerReference yet)."""
    manifest = build_pool_unversioned(taskqueue, namespace, spec, pool, replicas)
    return with_version(manifest, version_of(spec.of_pool(pool)))


def with_version(manifest: dict[str, Any], version: str) -> dict[str, Any]:
    """An unversioned worker Deployment ``manifest`` made ``version``'s (changed in place)."""
    manifest["metadata"]["name"] = f"{manifest['metadata']['name']}-v{version}"
    manifest["metadata"]["labels"][LABEL_VERSION] = version
    manifest["spec"]["selector"]["matchLabels"][LABEL_VERSION] = version
    template = manifest["spec"]["template"]
    template["metadata"]["labels"][LABEL_VERSION] = version
    for container in template["spec"]["containers"]:
        if container["name"] == CONTAINER:
            container["env"].append({"name": VERSION_ENV, "value": version})
    return manifest


class Load(dict[str, tuple[int, int]]):
    """version -> (jobs its workers hold, its workers holding any), from the workers'
    documents; with what the queues of the jobs pinned to a version hold (pinned.py), which
    the queues' numbers (``obs``) do not count."""

    pinned: int = 0
    """Jobs pinned to the newest version that wait."""
    pinned_running: int = 0
    """Jobs pinned to the newest version that run (on its workers)."""
    old_pinned_running: int = 0
    """Jobs pinned to the old versions that run: in what their workers hold, not in ``obs``."""


def discount(
    obs: Observation, load: Mapping[str, tuple[int, int]], spec: TaskQueueSpec
) -> Observation:
    """``obs`` without the jobs and busy workers of the versions other than ``spec``'s: the
    loop scales the newest version, and an old version's running jobs need none of its pods;
    with the jobs pinned to the newest version, which wait and run in its own queues."""
    if not spec.rollout.versioned:
        return obs
    current = version_of(spec)
    jobs = sum(j for v, (j, _) in load.items() if v != current)
    busy = sum(w for v, (_, w) in load.items() if v != current)
    pins = load if isinstance(load, Load) else Load()
    # the old versions' workers hold unpinned jobs (counted in obs) and pinned ones (not)
    jobs = max(0, jobs - pins.old_pinned_running) - pins.pinned_running
    if not jobs and not busy and not pins.pinned:
        return obs
    return replace(
        obs,
        backlog=obs.backlog + pins.pinned,
        in_flight=max(0, obs.in_flight - jobs),
        busy_workers=max(0, obs.busy_workers - busy),
    )
