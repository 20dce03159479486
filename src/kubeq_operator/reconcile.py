"""The worker Deployment's side of the loop: what the watch shows, and making it right.

``DeploymentView`` is what the kopf index keeps of each worker Deployment (so the loop reads
replicas from the watch, never by polling). ``ReplicaTracker`` bridges the lag between the
operator's own scale write and the watch showing it. ``ensure_deployment`` creates the
Deployment or rolls its pod template when the worker spec's hash changed, and refuses to
touch a Deployment of the same name that this TaskQueue does not own. It reports what it
did as an :class:`Ensured`; the loop turns that into Events and conditions.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from kubeq_operator import kube, versioned
from kubeq_operator.crd import ANNOTATION_HASH
from kubeq_operator.deployment import build
from kubeq_operator.spec import TaskQueueSpec

OWN_WRITE_SECONDS = 10.0
"""For this long after a scale write, the watch's older replicas are not believed."""


@dataclass(frozen=True)
class DeploymentView:
    """What the loop needs of a worker Deployment (from the index, so from the watch)."""

    name: str
    replicas: int
    current: int
    ready: int
    worker_hash: str | None
    pool: str | None = None
    """The worker pool it runs (spec.pools[].name); None: the TaskQueue's own Deployment."""
    version: str | None = None
    """A versioned rollout's version (versioned.py); None: not versioned."""


class ReplicaTracker:
    """The Deployment's replicas as the loop should believe them."""

    def __init__(self) -> None:
        self.expected: int | None = None
        self.expected_at = 0.0

    def wrote(self, replicas: int, now: float) -> None:
        """The operator set the replicas to ``replicas`` at ``now``."""
        self.expected, self.expected_at = replicas, now

    def current(self, dep: DeploymentView | None, now: float) -> int | None:
        """The Deployment's replicas; our own last write until the watch shows it."""
        if dep is None:
            return self.expected
        if (
            self.expected is not None
            and dep.replicas != self.expected
            and now - self.expected_at < OWN_WRITE_SECONDS
        ):
            return self.expected
        self.expected = None
        return dep.replicas


class DeploymentConflict(Exception):
    """The worker Deployment's name is taken by a Deployment this TaskQueue does not own."""


class Action(enum.Enum):
    CREATED = "created"
    """The Deployment did not exist; it was created (or someone else just created it)."""
    ROLLED = "rolled"
    """The pod template was replaced: Kubernetes rolls the workers."""
    CURRENT = "current"
    """The live Deployment already has this spec (the watch lagged)."""


@dataclass(frozen=True)
class Ensured:
    action: Action
    name: str
    """The Deployment's name."""
    replicas: int | None = None
    """CREATED by this call: its replicas (None: it existed already, a create conflict)."""
    old_hash: str | None = None
    """ROLLED: the worker hash it had."""


async def ensure_deployment(
    namespace: str,
    taskqueue: str,
    owner: Mapping[str, Any],
    spec: TaskQueueSpec,
    replicas: int,
) -> Ensured:
    """Make the worker Deployment exist with ``spec``'s pod template.

    ``replicas`` is used only when the Deployment is created. Raises DeploymentConflict
    when a Deployment of that name is not controlled by ``owner`` (the TaskQueue).
    """
    make = versioned.build if spec.rollout.versioned else build
    return await ensure_manifest(
        namespace,
        versioned.worker_deployment(taskqueue, spec),
        owner,
        spec.worker_hash(),
        lambda n: make(taskqueue, namespace, spec, n),
        replicas,
    )


async def ensure_manifest(
    namespace: str,
    name: str,
    owner: Mapping[str, Any],
    worker_hash: str,
    manifest_of: Callable[[int], dict[str, Any]],
    replicas: int,
) -> Ensured:
    """Make Deployment ``name`` exist with the pod template of ``manifest_of(replicas)``,
    whose worker hash is ``worker_hash`` (the TaskQueue's own Deployment, or a pool's)."""
    live = await kube.get_deployment(namespace, name)
    if live is None:
        manifest = manifest_of(replicas)
        kopf.adopt(manifest, owner=owner)  # type: ignore[arg-type]
        try:
            await kube.create_deployment(namespace, manifest)
        except Exception as e:
            if not kube.is_conflict(e):
                raise
            return Ensured(Action.CREATED, name)
        return Ensured(Action.CREATED, name, replicas=replicas)
    owners = live.get("metadata", {}).get("ownerReferences") or []
    uid = owner.get("metadata", {}).get("uid")
    if not any(o.get("uid") == uid and o.get("controller") for o in owners):
        raise DeploymentConflict(
            f"a Deployment named {name} exists and is not owned by this TaskQueue: rename "
            f"the TaskQueue or delete that Deployment (kubectl -n {namespace} delete "
            f"deployment {name})"
        )
    live_hash = (live.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_HASH)
    if live_hash == worker_hash:
        return Ensured(Action.CURRENT, name)
    manifest = manifest_of(0)
    await kube.json_patch_deployment(
        namespace,
        name,
        [
            {
                "op": "add",
                "path": "/metadata/annotations/" + ANNOTATION_HASH.replace("/", "~1"),
                "value": worker_hash,
            },
            {"op": "replace", "path": "/spec/template", "value": manifest["spec"]["template"]},
        ],
    )
    return Ensured(Action.ROLLED, name, old_hash=live_hash)
