"""Job mode in the scaling simulator: kubeq's one-Job-per-job pools against a model of KEDA's
ScaledJob, on the same arrivals and the same pods.

The kubeq side is not a model: every ``pollSeconds`` it calls ``kubeq_operator.jobpods.plan``,
the function the operator's Job-mode pass uses to decide how many Jobs to create, with what
that pass sees (each Job's state, each pod's held jobs, the ready jobs).

The world (same for every system): jobs arrive per the scenario into one FIFO queue. A Job's
pod is Pending (scheduling, image pull) for ``pending`` seconds, then Running while its worker
starts (Python import, connecting) for ``boot`` seconds; then it leases the oldest ready job,
runs it and exits, or exits at once when none is ready (an idle Job: its pod-seconds are
wasted). A pod is billed from its Job's creation to its exit.

KEDA ScaledJob (keda.sh/docs/2.18/reference/scaledjob-spec, "scalingStrategy" and
"maxReplicaCount"; the redis list scaler, one job per Job: ``listLength`` 1): every
``pollingInterval`` it reads the queue length (jobs waiting, not those leased), and counts
``runningJobCount`` (Jobs not finished, pending ones included) and ``pendingJobCount`` (Jobs
not finished whose pod is not Running or Succeeded; with ``pendingPodConditions``, whose pod
lacks one of those conditions). ``maxScale = min(maxReplicaCount, queue length)``; each
strategy turns those into the Jobs to create, as its documentation gives it:
``default`` maxScale - running; ``custom`` min(maxScale - deduction - running x percentage,
maxReplicaCount); ``accurate`` maxReplicaCount - running when maxScale + running exceeds
maxReplicaCount, else maxScale - pending; ``eager`` min(maxReplicaCount - running - pending,
maxScale). It creates at most the queue length (``eager``: up to maxReplicaCount). Nothing
is created while the queue is empty (activation 0).

Where the pending pods go unseen: a pod whose container runs but whose worker has not taken
its job yet is not "pending" by the default rule (kedacore/keda#6157: duplicate Jobs when
pods start slower than the polling interval; the reporter saw "Number of pending Jobs: 0"
with pods still Pending, the "#6157 as reported" row); and ``accurate`` ignores pending Jobs
whenever maxScale + running exceeds maxReplicaCount (kedacore/keda#7329, redundant idle
Jobs). ``pendingPodConditions: [Ready]`` with a readiness probe that passes when the worker
is about to consume is the documented remedy for the first.

Run through ``bench/scaling_report.py`` (``make scaling-sim``), or alone (``python
bench/scaling_jobs.py [OUT_DIR]``): it writes ``OUT_DIR/scaling-jobs.json``
(bench/results/scaling/), which ``bench/scaling_jobs_report.py`` renders into the
``bench:scaledjob`` blocks of bench/README.md and docs/scaling.md (``python bench/report.py
--kinds scaledjob bench/README.md docs/scaling.md``).
"""

from __future__ import annotations

import json
import random
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scaling_world import Job, pct

from kubeq_operator import jobpods

# -- the world ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    max_jobs: int
    """maxReplicas (kubeq) and maxReplicaCount (KEDA): Jobs not finished at once."""
    pending: float
    """Seconds a new Job's pod is Pending (scheduling, image pull)."""
    boot: float
    """Seconds its pod then runs before the worker takes a job (Python import, connect)."""
    arrivals: Callable[[random.Random], list[Job]]
    horizon: float = 4 * 3600.0
    exit: float = 0.0
    """Seconds from a job's end until its Job is finished (the pod's exit, the Job
    controller): still a Job not finished, still billed. 0 in the scenarios; the e2e
    measures it on the cluster and passes it, with ``pending``."""
    step: float = 1.0
    """The simulation's time step in seconds."""


@dataclass
class JobPod:
    """One Job and its pod."""

    name: str
    created: float
    running_at: float
    lease_at: float
    job: Job | None = None
    done_at: float | None = None
    """When its Job will be finished (known once the worker took a job or found none)."""
    exited: float | None = None

    def alive(self) -> bool:
        return self.exited is None

    def holds(self, t: float) -> bool:
        """Its worker holds its job (leased, not yet acknowledged)."""
        j = self.job
        return j is not None and j.started is not None and t < j.started + j.duration


@dataclass(frozen=True)
class Seen:
    """What a scaler reads at one instant."""

    t: float
    ready: int
    pods: list[JobPod]


@dataclass
class JobResult:
    system: str
    scenario: str
    jobs: int
    created: int
    idle: int
    """Jobs whose pod found no job and exited (over-creation)."""
    peak_pods: int
    drain: float | None
    """Seconds from the first arrival until the last job finished (None: never)."""
    p95_wait: float
    pod_seconds: float
    wasted_pod_seconds: float
    """Pod-seconds of idle Jobs."""
    unfinished: int


# -- the scalers -------------------------------------------------------------------------------


class JobScaler:
    name = ""
    period = 1.0
    phase = 0.0

    def create(self, seen: Seen, max_jobs: int) -> int:
        raise NotImplementedError


class KubeqJobs(JobScaler):
    """The operator's Job-mode pass: ``jobpods.plan`` on the pool's Jobs, its pods' held jobs
    (the workers' entries, read with the ready count) and the ready jobs."""

    def __init__(self, name: str, poll_seconds: float = 1.0) -> None:
        self.name, self.period = name, poll_seconds

    def create(self, seen: Seen, max_jobs: int) -> int:
        views = [
            jobpods.JobView(
                p.name,
                jobpods.DONE
                if not p.alive()
                else (jobpods.PENDING if seen.t < p.running_at else jobpods.RUNNING),
                p.name,
                "h",
            )
            for p in seen.pods
        ]
        busy = {p.name: 1 for p in seen.pods if p.alive() and p.holds(seen.t)}
        return jobpods.plan(seen.ready, views, busy, max_jobs)


STRATEGIES = ("default", "custom", "accurate", "eager")
PHASE, READY, NONE = "phase", "ready", "none"
"""How KEDA counts a pending Job: its pod not Running/Succeeded (the default rule); its pod
not Ready (``pendingPodConditions: [Ready]``, Ready when the worker is about to consume);
never (#6157 as reported)."""


def scaledjob_creates(
    strategy: str,
    queue: int,
    running: int,
    pending: int,
    max_count: int,
    deduction: int = 1,
    percentage: float = 0.5,
) -> int:
    """Jobs a ScaledJob creates in one poll, per its documented scaling strategy (queue
    length per Job 1, minReplicaCount 0)."""
    if queue <= 0:
        return 0  # not active
    max_scale = min(max_count, queue)
    scale_to = queue
    if strategy == "default":
        effective = max_scale - running
    elif strategy == "custom":
        effective = min(max_scale - deduction - int(running * percentage), max_count)
    elif strategy == "accurate" and max_scale + running > max_count:
        effective = max_count - running  # pending Jobs not subtracted (#7329)
    elif strategy == "accurate":
        effective = max_scale - pending
    elif strategy == "eager":
        effective = min(max_count - running - pending, max_scale)
        scale_to = max_count
    else:
        raise ValueError(f"scalingStrategy.strategy {strategy!r}: one of {', '.join(STRATEGIES)}")
    return max(0, min(scale_to, effective))


class ScaledJob(JobScaler):
    def __init__(
        self, name: str, strategy: str, polling: float = 5.0, pending_rule: str = PHASE
    ) -> None:
        self.name, self.strategy, self.period = name, strategy, polling
        self.pending_rule = pending_rule

    def pending(self, p: JobPod, t: float) -> bool:
        if self.pending_rule == PHASE:
            return t < p.running_at
        if self.pending_rule == READY:
            return t < p.lease_at
        return False

    def create(self, seen: Seen, max_jobs: int) -> int:
        alive = [p for p in seen.pods if p.alive()]
        pending = sum(1 for p in alive if self.pending(p, seen.t))
        return scaledjob_creates(self.strategy, seen.ready, len(alive), pending, max_jobs)


KUBEQ_SYSTEM = "kubeq Job mode"
POLLING = 5.0
"""KEDA's pollingInterval in the comparison: 5 s, as #6157's reporter and many users set it;
each strategy also runs at the default, ``DEFAULT_POLLING`` (fewer polls in a pod's start-up,
so fewer duplicates of it, and a longer wait for each new job)."""
DEFAULT_POLLING = 30.0


def systems() -> Iterator[JobScaler]:
    yield KubeqJobs(KUBEQ_SYSTEM)
    for strategy in STRATEGIES:
        yield ScaledJob(f"ScaledJob {strategy}", strategy, POLLING)
    yield ScaledJob("ScaledJob accurate, pendingPodConditions [Ready]", "accurate", POLLING, READY)
    yield ScaledJob("ScaledJob accurate, #6157 as reported", "accurate", POLLING, NONE)
    for strategy in STRATEGIES:
        name = f"ScaledJob {strategy}, pollingInterval {DEFAULT_POLLING:g} s"
        yield ScaledJob(name, strategy, DEFAULT_POLLING)


# -- the simulation ----------------------------------------------------------------------------


def simulate(scenario: Scenario, scaler: JobScaler, seed: int = 1) -> JobResult:
    arrivals = sorted(scenario.arrivals(random.Random(seed)), key=lambda j: j.arrival)
    queue: deque[Job] = deque()
    pods: list[JobPod] = []
    nxt, k, t, peak, next_decision = 0, 0, 0.0, 0, scaler.phase
    while t <= scenario.horizon:
        while nxt < len(arrivals) and arrivals[nxt].arrival <= t:
            queue.append(arrivals[nxt])
            nxt += 1
        for p in pods:
            if p.alive() and p.done_at is not None and p.done_at <= t:
                p.exited = p.done_at
        for p in sorted((p for p in pods if p.done_at is None), key=lambda p: p.lease_at):
            if p.lease_at > t:
                break
            if queue:  # the worker takes the oldest ready job, runs it, exits
                p.job = queue.popleft()
                p.job.started = t
                p.done_at = t + p.job.duration + scenario.exit
            else:  # nothing ready: the worker exits 0 at once
                p.done_at = t + scenario.exit
            if p.done_at <= t:
                p.exited = p.done_at
        if t >= next_decision:
            next_decision += scaler.period
            alive = sum(1 for p in pods if p.alive())
            n = scaler.create(Seen(t, len(queue), pods), scenario.max_jobs)
            for _ in range(n):
                ready = t + scenario.pending
                pods.append(JobPod(f"job-{len(pods)}", t, ready, ready + scenario.boot))
            peak = max(peak, alive + n)
        if nxt == len(arrivals) and not queue and not any(p.alive() for p in pods):
            break
        k += 1
        t = k * scenario.step
    ends = [j.started + j.duration for j in arrivals if j.started is not None]
    unfinished = sum(1 for j in arrivals if j.started is None)
    first = arrivals[0].arrival if arrivals else 0.0
    idle = [p for p in pods if p.job is None]

    def billed(p: JobPod) -> float:
        return (p.exited if p.exited is not None else t) - p.created

    waits = sorted(j.started - j.arrival for j in arrivals if j.started is not None)
    return JobResult(
        system=scaler.name,
        scenario=scenario.name,
        jobs=len(arrivals),
        created=len(pods),
        idle=len(idle),
        peak_pods=peak,
        drain=round(max(ends) - first, 1) if ends and not unfinished else None,
        p95_wait=pct(waits, 0.95),
        pod_seconds=round(sum(billed(p) for p in pods)),
        wasted_pod_seconds=round(sum(billed(p) for p in idle)),
        unfinished=unfinished,
    )


# -- the scenarios -----------------------------------------------------------------------------


def scenarios() -> list[Scenario]:
    def long_jobs(rng: random.Random) -> list[Job]:
        return [Job(1.0, 600.0) for _ in range(10)]

    def burst(rng: random.Random) -> list[Job]:
        return [Job(1.0 + rng.uniform(0, 60), 120.0) for _ in range(200)]

    def slow_pull(rng: random.Random) -> list[Job]:
        t, out = 0.0, []
        while (t := t + rng.expovariate(0.5)) < 300:
            out.append(Job(t, rng.uniform(60, 180)))
        return out

    return [
        Scenario(
            "long",
            "10 jobs of 10 min at once, maxReplicas 3; pods Pending 5 s, then 10 s to start",
            3,
            5.0,
            10.0,
            long_jobs,
        ),
        Scenario(
            "burst",
            "200 jobs of 2 min within a minute, maxReplicas 100; pod start-up 20 s "
            "(5 s Pending, 15 s starting)",
            100,
            5.0,
            15.0,
            burst,
        ),
        Scenario(
            "slowpull",
            "Poisson 0.5 jobs/s for 5 min, 1-3 min each, maxReplicas 100; a slow image pull: "
            "pods Pending 60 s, then 5 s to start",
            100,
            60.0,
            5.0,
            slow_pull,
        ),
    ]


def run(out: Path | None, seed: int = 1) -> list[JobResult]:
    results = []
    for scenario in scenarios():
        for scaler in systems():
            r = simulate(scenario, scaler, seed)
            results.append(r)
            drain = "never" if r.drain is None else f"{r.drain:.0f}"
            print(
                f"{r.scenario:8} {r.system:50} Jobs {r.created:4} for {r.jobs:4} jobs, idle "
                f"{r.idle:4}, peak {r.peak_pods:4}, drained {drain:>6} s, wasted "
                f"{r.wasted_pod_seconds:7.0f} pod-s",
                flush=True,
            )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        doc: dict[str, Any] = {
            "seed": seed,
            "keda_polling_seconds": POLLING,
            "scenarios": {s.name: s.title for s in scenarios()},
            "results": [asdict(r) for r in results],
        }
        (out / "scaling-jobs.json").write_text(json.dumps(doc, indent=1) + "\n")
    return results


def load_results(path: Path) -> list[JobResult]:
    return [JobResult(**r) for r in json.loads(path.read_text())["results"]]


if __name__ == "__main__":
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
