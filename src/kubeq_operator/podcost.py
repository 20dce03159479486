"""Drain-aware scale-down: tell the ReplicaSet which worker pods to remove first.

Just before the operator lowers a Deployment's replicas, it annotates the worker pods with
``controller.kubernetes.io/pod-deletion-cost``: idle pods (their workers heartbeat with 0
jobs, or no worker has registered yet) get a low cost, busy pods a high one that grows
with their job count, so the ReplicaSet deletes idle pods first. A busy pod that still has
to go gets SIGTERM and drains (the worker's contract). Kubernetes advises against
updating this annotation often, so it is written only before a scale-down and only where
the value changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
IDLE_COST = -100
BUSY_BASE_COST = 1000


def busy_by_pod(workers: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Jobs held per pod name, from the worker maps of several queues.

    A worker id is ``<pod name>:<pid>:<random>``; one worker appears in every queue it
    consumes, with the jobs it holds from that queue.
    """
    out: dict[str, int] = {}
    for per_queue in workers:
        for worker_id, jobs in per_queue.items():
            pod = worker_id.split(":", 1)[0]
            out[pod] = out.get(pod, 0) + int(jobs)
    return out


def cost_for(jobs: int | None) -> int:
    """The deletion cost of a pod whose workers hold ``jobs`` (None: no heartbeat)."""
    if not jobs:
        return IDLE_COST
    return BUSY_BASE_COST + min(jobs, 1_000_000)


def plan(pods: Mapping[str, str | None], busy: Mapping[str, int]) -> dict[str, int]:
    """The pods whose annotation must change, with the new cost.

    ``pods`` maps pod name -> its current annotation value (None when absent).
    """
    changes: dict[str, int] = {}
    for pod, current in pods.items():
        cost = cost_for(busy.get(pod))
        if current != str(cost):
            changes[pod] = cost
    return changes
