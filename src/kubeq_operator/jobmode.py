"""Job mode of a worker pool (``spec.pools[].mode: Job``): one Kubernetes Job, one pod, per
job. One pass per pool, run by ``pools.Pools`` in place of the Deployment pass.

Each pass lists the pool's Jobs and their pods FIRST, then reads the pool's queues (ready
jobs, and the jobs each pod's worker holds, in one read), then creates ``jobpods.plan`` new
Jobs. In that order a Job whose pod leased its job between the two reads is seen as on the
way and its job as gone: the pass creates one Job too few, never one too many (the next
pass catches up). The lists are consistent reads of the API server, so a Job created by the
previous pass is always seen.

A Job whose pod cannot start (unschedulable, image pull error, a missing Secret) is
reported: a Warning Event per pod and reason, and the ``JobPodsStarted`` condition False
naming the pod and why. Its pod never ran, so no job was leased: the job stays ready in its
queue, no attempt counted. The Job still counts as on the way (no Job piles up behind it).
When the pool's pod template changes (say, the image is fixed), the pool's Jobs whose pods
have not started and were made from the old template are deleted, and new ones created. A
Job whose pod runs (or may: its node stopped reporting it) is never deleted: it runs its one
job on the old template and ends. So a Job-mode pool needs no versions (``rollout``).

A Job whose pod failed (its worker exited non-zero: a missing tasks module, a bad setting,
OOMKilled) is reported too: a Warning Event ``JobPodFailed`` with the worker's exit code and
last log line, and ``JobPodsStarted`` False (reason ``WorkerFailed``) until a Job of the same
pod template succeeds or the template changes. The jobs it had not taken stay queued, so
without a brake every pass would make a new Job for them: after N failed pods in a row
(of the current template, counted since the operator started) the pool makes one Job per
``jobpods.backoff_seconds(N)``, counted from the last failure and the last Job made.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kopf
from kubernetes import client
from redis.exceptions import RedisError

from kubeq_operator import jobpods, kube, podcost
from kubeq_operator.names import pool_job_prefix
from kubeq_operator.poolspec import PoolSpec
from kubeq_operator.redis_source import RedisDown
from kubeq_operator.spec import TaskQueueSpec
from kubeq_operator.status import FALSE, TRUE, Condition

if TYPE_CHECKING:
    from kubeq_operator.loop import TaskQueueLoop

log = logging.getLogger("kubeq_operator")


async def list_jobs(namespace: str, selector: str) -> list[dict[str, Any]]:
    batch = client.BatchV1Api(kube.api_client())
    jobs = await asyncio.to_thread(batch.list_namespaced_job, namespace, label_selector=selector)
    items: list[dict[str, Any]] = kube.api_client().sanitize_for_serialization(jobs)["items"]
    return items


async def create_job(namespace: str, manifest: dict[str, Any]) -> str:
    batch = client.BatchV1Api(kube.api_client())
    job: Any = await asyncio.to_thread(batch.create_namespaced_job, namespace, manifest)  # type: ignore[arg-type, unused-ignore]
    return str(job.metadata.name)


async def delete_job(namespace: str, name: str) -> None:
    batch = client.BatchV1Api(kube.api_client())
    await asyncio.to_thread(
        batch.delete_namespaced_job, name, namespace, propagation_policy="Background"
    )


@dataclass
class Failures:
    """A pool's failed pods in a row, of its current pod template."""

    worker_hash: str
    count: int = 0
    at: float = float("-inf")
    """time.monotonic() of the last failure seen."""
    probe_at: float = float("-inf")
    """time.monotonic() of the last Job made while failures were counted."""
    last: tuple[str, str, str] | None = None
    """(pod, reason, message) of the last failure."""
    seen: set[str] = field(default_factory=set)
    """The finished Jobs already counted."""


class JobPools:
    """The Job-mode pools of one TaskQueue (lives as long as its loop)."""

    def __init__(self, loop: TaskQueueLoop) -> None:
        self.loop = loop
        self.created: dict[str, int] = {}
        """Jobs created per pool since the operator started (status ``jobsCreated``)."""
        self.stuck: dict[str, list[tuple[str, str, str]]] = {}
        """Per pool: (pod, reason, message) of each pod that cannot start."""
        self.reported: set[tuple[str, str]] = set()
        """(pod, reason) already posted as an Event."""
        self.failures: dict[str, Failures] = {}

    async def step_pool(self, spec: TaskQueueSpec, pool: PoolSpec) -> dict[str, Any]:
        loop, ns = self.loop, self.loop.namespace
        pspec = spec.of_pool(pool)
        selector = jobpods.selector(loop.name, pool.name)
        raw_jobs, pods = await asyncio.gather(list_jobs(ns, selector), kube.list_pods(ns, selector))
        names = [j["metadata"]["name"] for j in raw_jobs]
        views = jobpods.classify(raw_jobs, pods)
        views = await self.remove_outdated(pool, views, pspec.worker_hash())
        fails = self.note_done(pool, views, pspec.worker_hash())
        entry: dict[str, Any] = {"name": pool.name, "mode": "Job"}
        try:
            stats = await loop.source.read_queues(pspec, pspec.physical_queues)
        except (RedisError, OSError, TimeoutError, RedisDown) as e:
            log.warning("pool %s of %s/%s: queues not read: %s", pool.name, ns, loop.name, e)
            stats = None
        if stats is not None:
            ready = sum(s.backlog for s in stats if not s.paused)
            busy = podcost.busy_by_pod(s.workers for s in stats)
            wanted = jobpods.plan(ready, views, busy, pool.scaling.max_replicas)
            now = time.monotonic()
            wanted = jobpods.gate(wanted, fails.count, now - fails.at, now - fails.probe_at)
            if wanted:
                if fails.count:
                    fails.probe_at = now
                await self.create(spec, pool, wanted, ready, views, names)
            entry.update(
                backlog=sum(s.backlog for s in stats),
                inFlight=sum(s.in_flight for s in stats),
            )
        self.note_stuck(pool, views)
        entry.update(
            jobsPending=sum(1 for j in views if j.state == jobpods.PENDING),
            jobsRunning=sum(1 for j in views if j.state == jobpods.RUNNING),
            jobsCreated=self.created.get(pool.name, 0),
            maxJobs=pool.scaling.max_replicas,
            queues=list(pool.logical_queues(spec.queues)),
        )
        if fails.count:
            entry["podsFailedInARow"] = fails.count
        return entry

    async def create(
        self,
        spec: TaskQueueSpec,
        pool: PoolSpec,
        wanted: int,
        ready: int,
        views: list[jobpods.JobView],
        names: list[str],
    ) -> None:
        loop = self.loop
        manifest = jobpods.build(loop.name, loop.namespace, spec, pool)
        kopf.adopt(manifest, owner=loop.body)  # type: ignore[arg-type]
        prefix = pool_job_prefix(loop.name, pool.name)
        made = 0
        for name in jobpods.job_names(prefix, names, views, wanted, pool.scaling.max_replicas):
            manifest["metadata"]["name"] = name
            try:
                await create_job(loop.namespace, manifest)
            except Exception as e:  # made by another operator acting on the same state
                if not kube.is_conflict(e):
                    raise
                log.warning("Job %s/%s exists already; not created again", loop.namespace, name)
                continue
            made += 1
            self.created[pool.name] = self.created.get(pool.name, 0) + 1
        if made == 0:
            return
        pending = sum(1 for j in views if j.state == jobpods.PENDING)
        running = sum(1 for j in views if j.state == jobpods.RUNNING)
        message = (
            f"pool {pool.name}: created {made} Jobs for {ready} ready jobs "
            f"({pending} Jobs pending, {running} running, at most {pool.scaling.max_replicas})"
        )
        loop.event("Normal", "PoolJobsCreated", message)
        log.info("%s/%s: %s", loop.namespace, loop.name, message)

    async def remove_outdated(
        self, pool: PoolSpec, views: list[jobpods.JobView], worker_hash: str
    ) -> list[jobpods.JobView]:
        """Delete the Jobs of an older pod template whose pods have not started (so hold
        no job): the new template replaces them. Returns the Jobs left."""
        keep = []
        for job in views:
            if job.state == jobpods.PENDING and job.worker_hash != worker_hash:
                try:
                    await delete_job(self.loop.namespace, job.name)
                except Exception as e:
                    if not kube.is_not_found(e):
                        raise
                self.loop.event(
                    "Normal",
                    "PoolJobReplaced",
                    f"pool {pool.name}: deleted Job {job.name} (not started, made from an "
                    "older pod template); a new Job runs its job",
                )
                continue
            keep.append(job)
        return keep

    def note_done(self, pool: PoolSpec, views: list[jobpods.JobView], worker_hash: str) -> Failures:
        """Count the pool's newly finished Jobs of the current template: a failed pod adds
        one failure in a row (one Event per pass), a succeeded one ends the run."""
        fails = self.failures.get(pool.name)
        if fails is None or fails.worker_hash != worker_hash:
            fails = self.failures[pool.name] = Failures(worker_hash)
        done = [j for j in views if j.state == jobpods.DONE and j.worker_hash == worker_hash]
        new = [j for j in done if j.name not in fails.seen]
        fails.seen = {j.name for j in done}
        failed = [(j.pod or j.name, *j.failed) for j in new if j.failed is not None]
        for last in failed:
            fails.count += 1
            fails.last = last
        if failed and fails.last is not None:
            fails.at = time.monotonic()
            pod, _, message = fails.last
            more = f" ({len(failed)} pods failed since the last pass)" if len(failed) > 1 else ""
            self.loop.event(
                "Warning",
                "JobPodFailed",
                f"pool {pool.name}: pod {pod} failed: {message}{more}; jobs it had not taken "
                f"stay queued (no attempt counted); {fails.count} failed in a row: the next "
                f"Job in {jobpods.backoff_seconds(fails.count):.0f} s",
            )
        if any(j.failed is None for j in new):
            fails.count, fails.last = 0, None
        return fails

    def note_stuck(self, pool: PoolSpec, views: list[jobpods.JobView]) -> None:
        """Post an Event for each pod that cannot start (once per pod and reason)."""
        found = []
        for job in views:
            if job.stuck is None or job.pod is None:
                continue
            reason, message = job.stuck
            found.append((job.pod, reason, message))
            if (job.pod, reason) in self.reported:
                continue
            self.reported.add((job.pod, reason))
            self.loop.event(
                "Warning",
                "JobPodNotStarting",
                f"pool {pool.name}: pod {job.pod} of Job {job.name} cannot start: {reason}: "
                f"{message}; its job stays queued (never leased, no attempt counted)",
            )
        self.stuck[pool.name] = found

    def settle(self, spec: TaskQueueSpec) -> None:
        """After every pool's pass: the ``JobPodsStarted`` condition (only with Job pools)."""
        names = {p.name for p in spec.pools if p.mode == "Job"}
        self.stuck = {k: v for k, v in self.stuck.items() if k in names}
        self.created = {k: v for k, v in self.created.items() if k in names}
        self.failures = {k: v for k, v in self.failures.items() if k in names}
        live = {pod for found in self.stuck.values() for pod, _, _ in found}
        self.reported = {r for r in self.reported if r[0] in live}
        book = self.loop.book
        if not names:
            book.conditions.pop(Condition.JOB_PODS_STARTED, None)
            return
        stuck = [(pool, *s) for pool, found in sorted(self.stuck.items()) for s in found]
        failing = [(p, f) for p, f in sorted(self.failures.items()) if f.last is not None]
        if not stuck and failing:
            name, fails = failing[0]
            pod, _, message = fails.last or ("", "", "")
            book.set(
                Condition.JOB_PODS_STARTED,
                FALSE,
                "WorkerFailed",
                f"pool {name}: pod {pod} failed: {message}; {fails.count} failed in a row, "
                "the next Job after a back-off; its jobs stay queued",
            )
            return
        if not stuck:
            book.set(Condition.JOB_PODS_STARTED, TRUE, "Started", "no Job pod is stuck")
            return
        pool, pod, reason, message = stuck[0]
        more = f" (and {len(stuck) - 1} more)" if len(stuck) > 1 else ""
        book.set(
            Condition.JOB_PODS_STARTED,
            FALSE,
            reason,
            f"pool {pool}: pod {pod} cannot start: {message}{more}; its job stays queued",
        )
