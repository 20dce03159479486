"""The simulated world of bench/scaling_sim.py: pods that start, run a number of jobs at once
and drain when removed (``World``, ``Pod``, ``Job``), the five workload traces that feed it
(``traces()``), and a run's figures (``Result``)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

# -- the world ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    startup: float = 10.0
    """Seconds from pod creation to ready (image pull + Python import)."""
    concurrency: int = 4
    drain: float = 25.0
    """Seconds a removed pod's running jobs get (grace 30 s - 5 s)."""
    max_replicas: int = 50
    publish_every: float = 2.0
    """How often a worker publishes its counters (its heartbeat)."""
    shutdown: float = 0.0
    """Seconds from a removed pod's last job (or its removal, if idle) to its exit: the
    worker's SIGTERM handling and the node's deletion, billed like any other second. 0 in
    the traces; the e2e measures it on the cluster and passes it, like ``startup``."""


@dataclass
class Job:
    arrival: float
    duration: float
    started: float | None = None
    interrupted: int = 0


@dataclass
class Pod:
    created: float
    ready_at: float
    slots: list[tuple[float, Job | None]] = field(default_factory=list)
    """(free at, job running until then)."""
    leaving_at: float | None = None
    stopping_at: float | None = None
    """When a leaving pod ran its last job (its shutdown starts)."""
    exited: float | None = None
    done: int = 0

    def running(self, t: float) -> int:
        return sum(1 for free, job in self.slots if job is not None and free > t)


@dataclass
class Result:
    system: str
    trace: str
    jobs: int
    p50: float
    p95: float
    max: float
    replica_seconds: float
    scale_events: int
    interrupted: int
    unfinished: int
    series: dict[str, list[float]]


# -- traces ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    name: str
    title: str
    seconds: float
    arrivals: Callable[[random.Random], list[Job]]


def poisson(
    rng: random.Random,
    rate: Callable[[float], float],
    until: float,
    peak: float,
    duration: Callable[[random.Random], float],
) -> list[Job]:
    """Non-homogeneous Poisson arrivals by thinning (``peak`` >= rate everywhere)."""
    t, out = 0.0, []
    while True:
        t += rng.expovariate(peak)
        if t >= until:
            return out
        if rng.random() * peak <= rate(t):
            out.append(Job(t, duration(rng)))


def short(rng: random.Random) -> float:
    return rng.uniform(1.0, 3.0)


def traces() -> list[Trace]:
    def steady(rng: random.Random) -> list[Job]:
        return poisson(rng, lambda t: 4.0, 1800, 4.0, short)

    def bursts(rng: random.Random) -> list[Job]:
        jobs = poisson(rng, lambda t: 0.3, 2400, 0.3, short)
        for k in range(8):  # a burst of 100..400 jobs every 5 minutes, Poisson-timed within
            at = 150 + 300 * k + rng.uniform(-60, 60)
            jobs += [Job(at + rng.uniform(0, 5), short(rng)) for _ in range(rng.randint(100, 400))]
        return sorted(jobs, key=lambda j: j.arrival)

    def daily(rng: random.Random) -> list[Job]:
        day = 4 * 3600.0  # one day's curve compressed into 4 hours

        def rate(t: float) -> float:
            return 0.2 + 5.8 * max(0.0, math.sin(math.pi * t / day)) ** 2

        return poisson(rng, rate, day, 6.0, short)

    def herd(rng: random.Random) -> list[Job]:
        return [Job(60 + rng.uniform(0, 2), rng.uniform(0.5, 1.5)) for _ in range(10_000)]

    def long_mixed(rng: random.Random) -> list[Job]:
        def duration(r: random.Random) -> float:
            return 600.0 if r.random() < 0.05 else r.uniform(2, 8)

        return poisson(rng, lambda t: 0.3 if t < 3000 else 0.0, 3600, 0.3, duration)

    return [
        Trace("steady", "steady: Poisson 4 jobs/s, 1-3 s jobs, 30 min", 1800 + 600, steady),
        Trace("bursts", "Poisson bursts: 100-400 jobs every ~5 min over 0.3/s", 2400 + 600, bursts),
        Trace("daily", "daily curve (24 h in 4 h), 0.2..6 jobs/s", 4 * 3600 + 600, daily),
        Trace("herd", "thundering herd: 10,000 jobs at once, ~1 s each", 1800, herd),
        Trace("long", "long jobs: 5 % last 10 min, the rest 2-8 s, 0.3/s", 3600 + 900, long_mixed),
    ]


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return round(values[min(len(values) - 1, math.ceil(q * len(values)) - 1)], 2)
