"""The worker side of the local states machine (localstates.py): the task's gates, the
prefetch with a fixed room, and a real worker whose placement waits for the machine.

``Gates`` is what the task's runs do: each blocks until the machine opens its gate; the runs
at a gate and those let go and not yet back on the worker's loop say when the worker is at
rest. ``LocalWorker`` is ``kubeq.worker.loop.Worker`` with two seams: a fetch's jobs are
placed only when the machine says (``placing``), and each run that comes back is told.
"""

from __future__ import annotations

import threading
from typing import Any

import kubeq
from kubeq.worker.delivery import Delivery
from kubeq.worker.loop import Worker
from kubeq.worker.prefetch import Prefetch
from kubeq.worker.state import WorkerState
from kubeq.worker.threads import Run

CONCURRENCY = 2
PREFETCH = 2
"""Jobs leased ahead of the free slots (the prefetch's room, fixed for the machine)."""
LANE_AHEAD = 1
"""Sync jobs parked in the thread lane beyond the free slots (the test sets it)."""


class Gates:
    """What the task's runs do: each blocks until the machine opens its gate."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gates: dict[tuple[str, str], threading.Event] = {}
        self.blocked: set[tuple[str, str]] = set()
        """Runs (job, lease) inside the task, waiting at their gate."""
        self.starts: list[tuple[str, str, int]] = []
        """Every start: job, lease and the machine's clock when it began."""
        self.clock = 0
        self.passing: set[tuple[str, str]] = set()
        """Runs whose gate the machine opened and that have not come back on the worker's
        loop yet (``LocalWorker._direct_returned``): their thread may not have woken yet."""

    def run(self, job: str) -> str:
        ctx = kubeq.current_job(required=True)
        key = (job, ctx.lease)
        with self.lock:
            self.starts.append((job, ctx.lease, self.clock))
            gate = self.gates.setdefault(key, threading.Event())
            self.blocked.add(key)
        gate.wait(60)
        with self.lock:  # let go (``open``), or never: the machine's settle then times out
            self.blocked.discard(key)
        return job

    def open(self, key: tuple[str, str]) -> None:
        """Let a blocked run go on: it counts as passing until it is back on the loop."""
        with self.lock:
            if key in self.blocked:
                self.blocked.discard(key)
                self.passing.add(key)
                self.gates[key].set()

    def back(self, key: tuple[str, str]) -> None:
        with self.lock:
            self.passing.discard(key)


class FixedPrefetch(Prefetch[Any]):
    """The prefetch's room fixed at ``PREFETCH`` (the real one follows the measured run
    times), and slots never slow by the clock: the machine's ``heartbeat`` step says when
    they turned out slow (``last_slow``), so an example replays the same."""

    def __init__(self) -> None:
        super().__init__(CONCURRENCY, budget_ms=3_600_000)

    def room(self) -> int:
        return PREFETCH


class LocalWorker(Worker):
    """A real worker whose fetched jobs are placed when the machine says."""

    placing = False
    gates: Gates

    def _place_fresh(self) -> None:
        if self.placing:
            WorkerState._place_fresh(self)

    def _direct_returned(self, d: Delivery, runner: Any, policy: Any, run: Run) -> None:
        super()._direct_returned(d, runner, policy, run)
        self.gates.back((d.id, d.job.lease))
