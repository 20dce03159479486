"""Jobs pinned to a worker version (``pin_version=True``, ``.set(version=...)``), for the
versions driver (rollout.py): what each version's pinned queue holds, the pods an old version
keeps for it, and the dead-lettering of the jobs pinned to a version that no longer runs.

A job pinned to version V of queue ``q`` waits in the queue ``q~V`` (kubeq.store.versions),
which only V's workers consume, retired or not. Each pass:

1. the TaskQueue's pinned queues are found in the queue registry (every queue an enqueue
   wrote to) and their waiting (ready, delayed) and running (leased) jobs counted;
2. a version whose Deployment exists (the newest, or an old one draining) keeps its jobs:
   the newest version's pinned backlog joins the loop's observation (it scales for them);
   an old version is not removed while its pinned jobs wait or run (``pins_for``), and it is
   scaled to at least one pod, up to its backlog over ``jobsPerReplica`` (never above
   ``maxReplicas``), while any wait (``wanted_replicas``); ``maxDrainSeconds`` still ends
   it;
3. the jobs pinned to any other version (its Deployment removed, after ``maxDrainSeconds``
   or because it held nothing; a version this TaskQueue never ran; any version when the
   TaskQueue is not ``Versioned``) are dead-lettered with the reason, each pass, so that
   one handed back by a draining pod, or enqueued late by a process still of that version,
   goes there too: never waiting for a worker that will not come, never lost silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubeq.store import keys
from kubeq.store.jobfields import text
from kubeq.store.keys import QueueKeys, pin_of
from kubeq.store.scripts import LUA, run_pipeline_async
from kubeq.store.versions import unpinned
from kubeq_operator.spec import TaskQueueSpec
from kubeq_operator.versioned import Load

BURY_BATCH = 500
"""Entries one call of pinned_bury.lua looks at."""


@dataclass(frozen=True)
class Pinned:
    """One version's pinned jobs, over the TaskQueue's queues."""

    waiting: int = 0
    """Ready or due later (a retry's backoff, a delay)."""
    running: int = 0
    """Leased by a worker."""
    queues: tuple[str, ...] = ()
    """Its pinned queues that hold any."""

    @property
    def total(self) -> int:
        return self.waiting + self.running


async def find(client: Any, spec: TaskQueueSpec) -> dict[str, list[str]]:
    """version -> the pinned queues of the TaskQueue's queues that enqueues wrote to."""
    mine = set(spec.physical_queues)
    out: dict[str, list[str]] = {}
    for raw in await client.smembers(keys.queues_key(spec.redis.prefix)):
        name = text(raw)
        version = pin_of(name)
        if version is not None and unpinned(name) in mine:
            out.setdefault(version, []).append(name)
    return out


async def backlog(client: Any, prefix: str, found: Mapping[str, list[str]]) -> dict[str, Pinned]:
    """version -> its pinned jobs (one round trip for every queue)."""
    if not found:
        return {}
    pipe = client.pipeline(transaction=False)
    order = [(v, q) for v, qs in found.items() for q in sorted(qs)]
    for _, q in order:
        k = QueueKeys.of(q, prefix)
        pipe.zcard(k.ready)
        pipe.zcard(k.delayed)
        pipe.zcard(k.active)
    counts = await pipe.execute()
    out: dict[str, Pinned] = {}
    for i, (version, q) in enumerate(order):
        ready, delayed, active = (int(c) for c in counts[3 * i : 3 * i + 3])
        p = out.get(version, Pinned())
        held = p.queues + ((q,) if ready + delayed + active else ())
        out[version] = Pinned(p.waiting + ready + delayed, p.running + active, held)
    return out


async def bury(client: Any, prefix: str, queues: Iterable[str], reason: str) -> int:
    """Dead-letter the waiting and lapsed jobs of ``queues`` with ``reason``; how many."""
    buried = 0
    for q in queues:
        k = QueueKeys.of(q, prefix)
        call = (LUA["pinned_bury"], k.script_keys, [k.base, reason, BURY_BATCH])
        while True:
            (reply,) = await run_pipeline_async(client, [call])
            removed, n = int(reply[0]), int(reply[1])
            buried += n
            if removed < BURY_BATCH:
                break
    return buried


def gone_reason(version: str, taskqueue: str, spec: TaskQueueSpec) -> str:
    """Why the jobs pinned to ``version`` are dead-lettered: it no longer runs."""
    if not spec.rollout.versioned:
        return (
            f"pinned to worker version {version}, but TaskQueue {taskqueue} runs no versioned "
            "workers (spec.rollout.strategy is not Versioned): enqueue it without pin_version"
        )
    return (
        f"pinned to worker version {version}, which TaskQueue {taskqueue} no longer runs (or "
        "never ran): requeue it without the pin to run it on the current version"
    )


def drained_reason(version: str, max_drain: int | None) -> str:
    """Why the jobs pinned to an old version are dead-lettered when it is removed."""
    return (
        f"pinned to version {version}, which was removed after maxDrainSeconds ({max_drain}) "
        "while it still waited: requeue it without the pin to run it on the current version"
    )


def note(load: Load, pins: Mapping[str, Pinned], current: str | None) -> None:
    """Put what the pinned queues hold into ``load``, for the newest version's scaling."""
    mine = pins.get(current or "", Pinned())
    load.pinned, load.pinned_running = mine.waiting, mine.running
    load.old_pinned_running = sum(p.running for v, p in pins.items() if v != current)


def wanted_replicas(pinned: Pinned, spec: TaskQueueSpec, replicas: int) -> int | None:
    """The replicas an old version scales to for its waiting pinned jobs (None: as it is)."""
    if pinned.waiting <= 0:
        return None
    per_pod = max(1, spec.scaling.jobs_per_replica)
    want = min(spec.scaling.max_replicas, max(1, -(-pinned.waiting // per_pod)))
    return want if want > replicas else None


def pins_for(entry: dict[str, Any], pinned: Pinned | None) -> dict[str, Any]:
    """A ``status.versions`` entry with the version's pinned jobs."""
    if pinned is not None and pinned.total:
        entry["pinnedWaiting"] = pinned.waiting
        entry["pinnedRunning"] = pinned.running
    return entry
