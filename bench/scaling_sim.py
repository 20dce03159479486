"""Replay workload traces through kubeq's real scaling policy and a model of KEDA + HPA.

Why a simulator: the question "which autoscaler gives lower waits for fewer replica-seconds"
needs the same arrivals, the same pods and the same job durations for every system, many
times over, for hours of simulated time, which no cluster run on 2 cores can give. The kubeq
side is not a model: it calls ``kubeq_operator.policy.decide`` and feeds it a drain rate
measured by ``kubeq_operator.drainrate.DrainRate`` from per-pod counters, as the operator does.

The world (same for every system): jobs arrive per the trace into one FIFO queue; a pod is
billed from its creation, takes ``startup`` seconds to become ready, then runs
``concurrency`` jobs at once. A pod told to go stops taking jobs, lets running jobs finish for
``drain`` seconds, then hands the rest back (re-queued at the front, their wait still counted
from their first arrival: "interrupted"), and is billed until it exits.

KEDA + HPA (documented behaviour, autoscaling/v2 and KEDA 2.x):
- KEDA polls the redis list scaler every ``pollingInterval`` (default 30 s); the metric is
  LLEN, i.e. jobs waiting (not those running); active when > ``activationListLength`` (0).
  At 0 replicas, active -> 1 replica. No activity for ``cooldownPeriod`` (default 300 s) -> 0.
- From 1 replica up, the HPA (sync every 15 s) reads the metric (AverageValue target
  ``listLength``, 5 in KEDA's examples): desired = ceil(current * metric / (target * current)),
  unchanged while the ratio is within 10 %; scale-up at most max(100 %, 4 pods) per 15 s;
  scale-down to the highest recommendation of the last 300 s (stabilization window); bounds
  [1, maxReplicas].
- Pods to remove are picked as a ReplicaSet does without deletion costs: not-ready first,
  then the newest; whether a pod is busy plays no part.
"Tuned" is KEDA as its users tune it: pollingInterval 5 s, cooldownPeriod 60 s.

kubeq: ``decide()`` every ``pollSeconds`` (1 s) with backlog, in-flight, oldest wait,
starting pods and the drain rate; scale-down removes idle pods first (pod-deletion-cost).

Run it through ``bench/scaling_report.py`` (``make scaling-sim``), which takes these options.
Output: ``--out DIR`` gets ``scaling-sim.json`` (every figure and time series) and
``scaling-sim.md`` (the table); ``--sweep`` adds ``scaling-sweep.json`` (the scale-down window
against tuned KEDA over several seeds, ``bench/scaling_report.py``); ``--readme FILE`` rewrites
the tables between their markers in FILE; ``bench/scaling_plot.py`` draws one PNG per trace
from the JSON (matplotlib lives in the bench tools venv, not the project's).
"""

from __future__ import annotations

import collections
import json
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scaling_world import Job, Pod, Result, Trace, World, pct, traces  # noqa: E402

from kubeq_operator.drainrate import DrainRate  # noqa: E402
from kubeq_operator.policy import History, Observation, ScalingSpec, decide  # noqa: E402

# -- autoscalers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    t: float
    backlog: int
    in_flight: int
    oldest_wait: float
    replicas: int
    ready: int
    busy: int


class Scaler:
    name = ""
    period = 1.0
    idle_first = False

    def desired(self, v: View, pods: list[Pod]) -> int:
        raise NotImplementedError


class Kubeq(Scaler):
    idle_first = True

    def __init__(self, name: str, spec: ScalingSpec, world: World) -> None:
        self.name, self.spec, self.world = name, spec, world
        self.period = spec.poll_seconds
        self.history = History()
        self.rate = DrainRate()
        self.docs: dict[int, dict[str, Any]] = {}

    def desired(self, v: View, pods: list[Pod]) -> int:
        # the workers publish their counters every publish_every seconds (their heartbeat)
        for i, p in enumerate(pods):
            if p.exited is None and v.t >= p.ready_at:
                doc = self.docs.get(id(p))
                if doc is None or v.t - doc["at"] >= self.world.publish_every:
                    self.docs[id(p)] = {
                        "id": str(i),
                        "at": v.t,
                        "queues": ["q"],
                        "counts": {"q": {"finished": p.done}},
                    }
        live = {id(p) for p in pods if p.exited is None}
        self.docs = {k: d for k, d in self.docs.items() if k in live}
        rate = self.rate.update(list(self.docs.values()), ["q"], v.backlog > 0, v.t)
        obs = Observation(
            backlog=v.backlog,
            in_flight=v.in_flight,
            current_replicas=v.replicas,
            oldest_wait=v.oldest_wait,
            rate_per_worker=rate,
            starting=v.replicas - v.ready,
            busy_workers=v.busy,
        )
        d = decide(obs, self.spec, self.history, v.t)
        self.history = d.history
        return d.replicas


@dataclass(frozen=True)
class KedaSettings:
    polling: float = 30.0
    cooldown: float = 300.0
    list_length: int = 5
    activation: int = 0
    hpa_sync: float = 15.0
    tolerance: float = 0.1
    down_window: float = 300.0


class KedaHpa(Scaler):
    def __init__(self, name: str, s: KedaSettings, world: World) -> None:
        self.name, self.s, self.world = name, s, world
        self.period = 1.0
        self.replicas = 0
        self.last_active = -1e9
        self.next_poll = 0.0
        self.next_sync = s.hpa_sync / 2  # the HPA's grid, at an average phase to KEDA's polls
        self.recs: list[tuple[float, int]] = []
        self.ups: list[tuple[float, int]] = []  # (time, replicas before) of scale-ups

    def desired(self, v: View, pods: list[Pod]) -> int:
        s, t = self.s, v.t
        self.replicas = v.replicas
        if t >= self.next_poll:  # KEDA's own loop: activation and cooldown
            self.next_poll = t + s.polling
            if v.backlog > s.activation:
                self.last_active = t
                if self.replicas == 0:
                    self.replicas = 1
                    self.recs = [(t, 1)]
            elif self.replicas > 0 and t - self.last_active >= s.cooldown:
                self.replicas = 0
                self.recs = []
        if t >= self.next_sync:  # the HPA: its own 15 s grid, acting only from 1 replica up
            self.next_sync += s.hpa_sync
            if self.replicas == 0:
                return 0
            cur = self.replicas
            ratio = v.backlog / (s.list_length * cur)
            raw = cur if abs(ratio - 1.0) <= s.tolerance else math.ceil(ratio * cur)
            raw = max(1, min(self.world.max_replicas, raw))
            self.recs = [r for r in self.recs if r[0] > t - s.down_window] + [(t, raw)]
            if raw > cur:
                limit = max(cur * 2, cur + 4)
                new = min(raw, limit)
            else:
                new = min(cur, max(r[1] for r in self.recs))
            self.replicas = new
        return self.replicas


# -- the simulation ----------------------------------------------------------------------------


def simulate(trace: Trace, scaler: Scaler, world: World, seed: int) -> Result:
    rng = random.Random(seed)
    arrivals = trace.arrivals(rng)
    queue: collections.deque[Job] = collections.deque()
    pods: list[Pod] = []
    nxt, t, dt = 0, 0.0, 1.0
    events, interrupted, last_desired = 0, 0, 0
    next_decision = 0.0
    series: dict[str, list[float]] = {"t": [], "replicas": [], "backlog": [], "oldest": []}
    while t < trace.seconds:
        end = t + dt
        while nxt < len(arrivals) and arrivals[nxt].arrival < end:
            queue.append(arrivals[nxt])
            nxt += 1
        # pods take jobs, FIFO, slot by slot within the step
        for p in pods:
            if p.exited is not None or p.leaving_at is not None or p.ready_at >= end:
                continue
            for i, (free_at, job) in enumerate(p.slots):
                free = free_at
                if job is not None and free < end:  # it ends within this step
                    p.done += 1
                    p.slots[i] = (free, None)
                while queue and free < end:
                    j = queue[0]
                    start = max(free, j.arrival, p.ready_at, t)
                    if start >= end:
                        break
                    queue.popleft()
                    j.started = start
                    free = start + j.duration
                    if free < end:
                        p.done += 1
                        p.slots[i] = (free, None)
                    else:
                        p.slots[i] = (free, j)
                        break
        # leaving pods: finished, or out of drain time (hand back what still runs)
        for p in pods:
            if p.leaving_at is None or p.exited is not None:
                continue
            if p.running(end) == 0:
                if p.stopping_at is None:
                    done_at = max([t] + [f for f, j in p.slots if j is not None])
                    p.stopping_at = min(end, max(done_at, p.leaving_at))
                if p.stopping_at + world.shutdown <= end:
                    p.exited = p.stopping_at + world.shutdown
            elif end >= p.leaving_at + world.drain:
                for free, job in p.slots:
                    if job is not None and free > end:
                        job.interrupted += 1
                        interrupted += 1
                        queue.appendleft(job)
                p.exited = end
        t = end
        if t >= next_decision:
            next_decision = t + scaler.period
            alive = [p for p in pods if p.exited is None and p.leaving_at is None]
            view = View(
                t=t,
                backlog=sum(1 for j in queue if j.arrival <= t),
                in_flight=sum(p.running(t) for p in alive),
                oldest_wait=(t - queue[0].arrival) if queue else 0.0,
                replicas=len(alive),
                ready=sum(1 for p in alive if p.ready_at <= t),
                busy=sum(1 for p in alive if p.running(t) > 0),
            )
            want = max(0, min(world.max_replicas, scaler.desired(view, pods)))
            if want != last_desired:
                events += 1
                last_desired = want
            if want > len(alive):
                for _ in range(want - len(alive)):
                    pods.append(
                        Pod(t, t + world.startup, [(t + world.startup, None)] * world.concurrency)
                    )
            elif want < len(alive):
                for p in pick_victims(alive, len(alive) - want, t, scaler.idle_first):
                    p.leaving_at = t
            if int(t) % 10 == 0:
                series["t"].append(t)
                series["replicas"].append(len(alive))
                series["backlog"].append(view.backlog)
                series["oldest"].append(view.oldest_wait)
    waits = sorted((j.started - j.arrival) for j in arrivals if j.started is not None)
    unfinished = sum(1 for j in arrivals if j.started is None)
    billed = sum(((p.exited if p.exited is not None else t) - p.created) for p in pods)
    return Result(
        system=scaler.name,
        trace=trace.name,
        jobs=len(arrivals),
        p50=pct(waits, 0.50),
        p95=pct(waits, 0.95),
        max=waits[-1] if waits else 0.0,
        replica_seconds=round(billed),
        scale_events=events,
        interrupted=interrupted,
        unfinished=unfinished,
        series=series,
    )


def pick_victims(alive: list[Pod], n: int, t: float, idle_first: bool) -> list[Pod]:
    """kubeq: idle pods first (pod-deletion-cost), then the least busy; a ReplicaSet without
    costs: not-ready first, then the newest, whatever they run."""

    def key(p: Pod) -> tuple[bool, int, float]:
        return (p.ready_at <= t, p.running(t) if idle_first else 0, -p.created)

    return sorted(alive, key=key)[:n]


# -- the systems and the run -------------------------------------------------------------------

KUBEQ_TARGET_WAIT = 10.0
KUBEQ_SLOW_DOWN: dict[str, Any] = {
    "stabilization_seconds": 60.0,
    "max_pods_per_step": 4,
    "period_seconds": 15.0,
}
"""Earlier, more cautious scale-down defaults (spec.scaling.scaleDown
{stabilizationSeconds: 60, maxPodsPerStep: 4, periodSeconds: 15}): kept beside the current
defaults to show what the scale-down delay costs."""

DEFAULTS_SYSTEM = "kubeq targetWait 10s"
"""kubeq as a user gets it who sets only ``targetWaitSeconds``: every other setting default."""
SLOW_DOWN_SYSTEM = "kubeq targetWait 10s, slow down (60 s, 4 pods/15 s)"
TUNED_KEDA_SYSTEM = "KEDA+HPA tuned"


TUNED_KEDA = KedaSettings(polling=5.0, cooldown=60.0)
"""KEDA as its users tune it: pollingInterval 5 s, cooldownPeriod 60 s."""


def default_wait_spec(world: World) -> ScalingSpec:
    """kubeq with ``targetWaitSeconds`` and every other setting at its default (the world's
    bounds and concurrency)."""
    base = ScalingSpec(max_replicas=world.max_replicas, jobs_per_replica=world.concurrency)
    return replace(base, target_wait_seconds=KUBEQ_TARGET_WAIT)


def systems(world: World) -> Iterator[Scaler]:
    wait = default_wait_spec(world)
    yield Kubeq(DEFAULTS_SYSTEM, wait, world)
    yield Kubeq(SLOW_DOWN_SYSTEM, replace(wait, **KUBEQ_SLOW_DOWN), world)
    yield Kubeq("kubeq jobsPerReplica", replace(wait, target_wait_seconds=None), world)
    yield KedaHpa("KEDA+HPA defaults", KedaSettings(), world)
    yield KedaHpa(TUNED_KEDA_SYSTEM, TUNED_KEDA, world)


def run(out: Path | None, only: set[str] | None, seed: int, world: World) -> list[Result]:
    results = []
    for trace in traces():
        if only and trace.name not in only:
            continue
        for scaler in systems(world):
            t0 = time.monotonic()
            r = simulate(trace, scaler, world, seed)
            results.append(r)
            print(
                f"{trace.name:7} {r.system:52} p50 {r.p50:7.1f} p95 {r.p95:7.1f} max "
                f"{r.max:7.1f} replica-s {r.replica_seconds:8.0f} events {r.scale_events:4} "
                f"interrupted {r.interrupted:4} ({time.monotonic() - t0:.1f}s)",
                flush=True,
            )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        doc = {
            "world": asdict(world),
            "seed": seed,
            "kubeq_target_wait": KUBEQ_TARGET_WAIT,
            "traces": {t.name: t.title for t in traces()},
            "results": [asdict(r) for r in results],
        }
        (out / "scaling-sim.json").write_text(json.dumps(doc))
        (out / "scaling-sim.md").write_text(table(results))
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| trace | system | p50 wait s | p95 wait s | max wait s | replica-s | scale events "
        "| interrupted |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.trace} | {r.system} | {r.p50:.1f} | {r.p95:.1f} | {r.max:.1f} | "
            f"{r.replica_seconds:.0f} | {r.scale_events} | {r.interrupted} |"
        )
    return "\n".join(lines) + "\n"
