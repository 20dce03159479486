"""Job mode of a worker pool, the pure part: the Job manifest, what each Job's pod is doing,
which pods cannot start or failed, how many Jobs to create, and the back-off after failed
pods (no API calls here; ``jobmode`` makes them).

A Job-mode pool's pod runs the pool's worker with ``--burst --max-jobs 1``: it leases one
job, runs it, acknowledges it and exits 0 (at once, with 0, when nothing is ready). So a
Job that exists and whose worker holds no job yet is a job's capacity already on the way:
``plan`` subtracts those (pending, starting, and running but not yet leased) from the ready
jobs, and never lets the Jobs not finished exceed ``maxReplicas``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubeq_operator.crd import (
    ANNOTATION_HASH,
    LABEL_COMPONENT,
    LABEL_MANAGED,
    LABEL_POOL,
    LABEL_TASKQUEUE,
    MANAGED_BY,
)
from kubeq_operator.names import taskqueue_label
from kubeq_operator.pooldeployment import build as build_deployment
from kubeq_operator.poolspec import PoolSpec
from kubeq_operator.spec import TaskQueueSpec

COMPONENT_JOB = "pool-job"
"""The component label of a Job-mode pool's Jobs and pods (no Deployment selects them)."""
ONE_JOB_ARGS = ("--burst", "--max-jobs", "1")
NOT_STARTING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
"""Waiting reasons of a container that will not start until someone fixes something."""

PENDING, RUNNING, DONE = "pending", "running", "done"
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 300.0
"""After a pool's pods failed N times in a row, its next Job waits
min(BASE x 2^(N-1), MAX) seconds after the last failure (as a kubelet's CrashLoopBackOff)."""


def selector_labels(taskqueue: str, pool: str) -> dict[str, str]:
    return {
        LABEL_TASKQUEUE: taskqueue_label(taskqueue),
        LABEL_COMPONENT: COMPONENT_JOB,
        LABEL_POOL: pool,
    }


def selector(taskqueue: str, pool: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector_labels(taskqueue, pool).items())


def build(taskqueue: str, namespace: str, spec: TaskQueueSpec, pool: PoolSpec) -> dict[str, Any]:
    """One Job of ``pool``: the pool's pod template, one job per pod, never restarted."""
    view = spec.of_pool(pool)
    template = build_deployment(taskqueue, namespace, spec, pool, 0)["spec"]["template"]
    labels = {**selector_labels(taskqueue, pool.name), LABEL_MANAGED: MANAGED_BY}
    template["metadata"]["labels"] = {**template["metadata"].get("labels", {}), **labels}
    pod = template["spec"]
    pod["restartPolicy"] = "Never"
    worker = pod["containers"][0]  # the worker container comes first (deployment.pod_template)
    worker["command"] = [*worker["command"], *ONE_JOB_ARGS]
    # a worker that fails leaves its last log lines as its termination message (reported)
    worker["terminationMessagePolicy"] = "FallbackToLogsOnError"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "",  # job_names gives each its own
            "namespace": namespace,
            "labels": labels,
            "annotations": {ANNOTATION_HASH: view.worker_hash()},
        },
        "spec": {
            "backoffLimit": 0,  # a failed pod's job is delivered again by its lease, not here
            "ttlSecondsAfterFinished": pool.job_ttl_seconds,
            "template": template,
        },
    }


def job_names(
    prefix: str, existing: Iterable[str], jobs: Iterable[JobView], wanted: int, max_jobs: int
) -> list[str]:
    """Names for ``wanted`` new Jobs: ``<prefix><slot>-<n>``, in the lowest slots
    (0..max_jobs-1) that no unfinished Job holds, each with the next number of its slot.

    Derived only from what the pass listed, so two operators acting on the same state (a
    peering handover) pick the same names and the API server refuses the second create:
    no Job is made twice. ``existing``: every Job name listed, finished or being deleted.
    """
    numbers: dict[int, int] = {}
    for name in existing:
        slot = _slot_of(prefix, name)
        if slot is not None:
            numbers[slot[0]] = max(numbers.get(slot[0], 0), slot[1])
    held = {s[0] for j in jobs if j.state != DONE and (s := _slot_of(prefix, j.name))}
    free = [i for i in range(max_jobs) if i not in held][:wanted]
    return [f"{prefix}{i}-{numbers.get(i, 0) + 1}" for i in free]


def _slot_of(prefix: str, name: str) -> tuple[int, int] | None:
    if not name.startswith(prefix):
        return None
    slot, _, n = name[len(prefix) :].partition("-")
    if not (slot.isdigit() and n.isdigit()):
        return None
    return int(slot), int(n)


@dataclass(frozen=True)
class JobView:
    """One Job of the pool as this pass sees it."""

    name: str
    state: str
    """PENDING (no pod yet, or its pod has not started), RUNNING (its pod runs, or its node
    stopped reporting it: it may run a job), or DONE."""
    pod: str | None
    worker_hash: str | None
    stuck: tuple[str, str] | None = None
    """(reason, message) when its pod cannot start (unschedulable, image pull error...)."""
    failed: tuple[str, str] | None = None
    """DONE only: (reason, message) when its pod failed (the worker exited non-zero) or the
    Job failed."""


def _finished(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    if status.get("succeeded") or status.get("failed"):
        return True
    return any(
        c.get("type") in ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget")
        and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _job_failed(job: Mapping[str, Any]) -> tuple[str, str] | None:
    status = job.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") in ("Failed", "FailureTarget") and c.get("status") == "True":
            return str(c.get("reason") or "Failed"), str(c.get("message") or "the Job failed")
    return ("Failed", "the Job failed") if status.get("failed") else None


def _disrupted(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True" for c in conditions
    )


def failure(pod: Mapping[str, Any]) -> tuple[str, str]:
    """Why a Failed pod failed: its worker container's exit code, reason and last words (the
    termination message: the end of its log, with FallbackToLogsOnError)."""
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        term = state.get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if not term:
            continue
        reason = str(term.get("reason") or "Error")
        lines = [ln.strip() for ln in str(term.get("message") or "").splitlines() if ln.strip()]
        said = f": {lines[-1][:300]}" if lines else ""
        code = term.get("exitCode")
        return reason, f"container {cs.get('name')} exited with exit code {code} ({reason}){said}"
    return str(status.get("reason") or "Failed"), str(status.get("message") or "the pod failed")


def stuck(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why a Pending pod cannot start, from its conditions and containers' states."""
    status = pod.get("status") or {}
    for c in status.get("conditions") or []:
        scheduled = c.get("type") == "PodScheduled" and c.get("status") == "False"
        if scheduled and c.get("reason") == "Unschedulable":
            return "Unschedulable", str(c.get("message") or "no node fits the pod")
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in NOT_STARTING:
            detail = waiting.get("message") or ""
            return str(waiting["reason"]), f"container {cs.get('name')}: {detail}".rstrip(": ")
    return None


def classify(jobs: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> list[JobView]:
    """Each Job (deleted ones left out) with the state of its newest pod."""
    by_job: dict[str, Mapping[str, Any]] = {}
    for p in pods:
        owner = next(
            (
                o["name"]
                for o in p["metadata"].get("ownerReferences") or []
                if o.get("kind") == "Job"
            ),
            None,
        )
        if owner is None:
            continue
        seen = by_job.get(owner)
        stamp = p["metadata"].get("creationTimestamp", "")
        if seen is None or stamp >= seen["metadata"].get("creationTimestamp", ""):
            by_job[owner] = p
    out = []
    for job in jobs:
        meta = job["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        name = meta["name"]
        worker_hash = (meta.get("annotations") or {}).get(ANNOTATION_HASH)
        pod = by_job.get(name)
        pod_name = pod["metadata"]["name"] if pod is not None else None
        phase = ((pod or {}).get("status") or {}).get("phase", "Pending")
        if _finished(job) or phase in ("Succeeded", "Failed"):
            if pod is not None and _disrupted(pod):
                why = None  # evicted or preempted: not the pool's failure
            elif pod is not None and phase == "Failed":
                why = failure(pod)
            else:
                why = _job_failed(job)
            out.append(JobView(name, DONE, pod_name, worker_hash, failed=why))
        elif pod is not None and phase in ("Running", "Unknown"):  # Unknown: it may run
            out.append(JobView(name, RUNNING, pod_name, worker_hash))
        else:
            why = stuck(pod) if pod is not None else None
            out.append(JobView(name, PENDING, pod_name, worker_hash, why))
    return out


def plan(ready: int, jobs: Iterable[JobView], busy: Mapping[str, int], max_jobs: int) -> int:
    """How many Jobs to create now.

    ``ready``: the pool's jobs ready to run; ``busy``: jobs held per pod (the workers'
    heartbeats, read with ``ready`` in one pass). A Job not done whose pod holds no job yet
    (pending, starting, or running but not yet leased) will take one of the ready jobs: it
    is capacity on the way, so it is subtracted. The Jobs not done never exceed
    ``max_jobs``.
    """
    active = [j for j in jobs if j.state != DONE]
    leased = sum(1 for j in active if j.pod is not None and busy.get(j.pod, 0) > 0)
    on_the_way = len(active) - leased
    return max(0, min(ready - on_the_way, max_jobs - len(active)))


def backoff_seconds(failures: int) -> float:
    """How long after the last of ``failures`` failed pods in a row the next Job waits."""
    if failures <= 0:
        return 0.0
    return float(min(BACKOFF_BASE_SECONDS * 2 ** min(failures - 1, 30), BACKOFF_MAX_SECONDS))


def gate(wanted: int, failures: int, since_failure: float, since_probe: float) -> int:
    """``wanted`` new Jobs, held back after failed pods: with ``failures`` in a row, one Job
    per ``backoff_seconds(failures)``, counted from the last failure (``since_failure``
    seconds ago) and from the last Job made since (``since_probe``). A failed pod took no job,
    or hands it back by its lease: without this, every pass would make a new Job for the
    same waiting job. Healthy Jobs already running go on (one OOMKilled pod among many slows
    the pool's growth, it does not stop it)."""
    if failures <= 0 or wanted <= 0:
        return wanted
    if min(since_failure, since_probe) < backoff_seconds(failures):
        return 0
    return 1
