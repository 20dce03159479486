"""Merge a TaskQueue's ``spec.worker.podTemplate`` with the pod kubeq builds.

Why a module of its own: the worker pod is assembled in three layers, and the order is the
contract users rely on (docs/decisions/worker-pod-template.md):

1. kubeq's defaults: the Pod Security "restricted" security contexts, the read-only root with
   an emptyDir at /tmp, no service-account token, default resources and probes;
2. the user's ``podTemplate`` (a partial PodTemplateSpec): scheduling, volumes, pod labels and
   annotations, image pull secrets, sidecars, security-context overrides... it wins over 1;
3. what kubeq owns: the selector labels, the worker hash, the worker container's name, image,
   command and env. The parser refuses a podTemplate that sets these, so 3 never silently
   overrides the user; it is applied last only to keep the invariants whatever happens.

Objects merge key by key; lists whose items Kubernetes merges by a key (containers by name,
volumes by name, volumeMounts by mountPath, env by name, ports by containerPort...) merge
item by item like a strategic merge patch; any other list is replaced whole.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "env": "name",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "resourceClaims": "name",
}
"""Lists merged item by item, and the field that identifies an item (the ``patchMergeKey``
of the Kubernetes API types)."""


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` merged over ``base`` (neither is changed)."""
    out: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = merge(old, value)
        elif key in MERGE_KEYS and isinstance(old, list) and isinstance(value, list):
            out[key] = _merge_list(old, value, MERGE_KEYS[key])
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_list(base: list[Any], overlay: list[Any], key: str) -> list[Any]:
    out = [copy.deepcopy(item) for item in base]
    index = {item.get(key): i for i, item in enumerate(out) if isinstance(item, Mapping)}
    for item in overlay:
        at = index.get(item.get(key)) if isinstance(item, Mapping) else None
        if at is None:
            out.append(copy.deepcopy(item))
        else:
            out[at] = merge(out[at], item)
    return out
