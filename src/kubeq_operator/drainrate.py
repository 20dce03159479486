"""The measured drain rate per worker: jobs a busy worker settles per second, smoothed.

``spec.scaling.targetWaitSeconds`` sizes the fleet with Little's law, which needs how fast one
worker drains the queue. Workers already publish their job counters with their heartbeat
(``kubeq.store.workers``: per queue, jobs finished, retried, failed since the process started);
this module turns two successive documents of the same worker into a rate, keeps only the
intervals in which work was waiting (an idle worker's low rate says nothing of its capacity),
and smooths the samples with an exponential moving average whose half-life is
``defaults.DRAIN_RATE_HALF_LIFE_SECONDS``. Pure: documents and times in, a number out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubeq import defaults

SETTLED = ("finished", "retried", "failed")
"""Outcomes that end a delivery by running it (a requeued hand-back did not run to the end)."""


@dataclass(frozen=True)
class Sample:
    """One worker's settled-jobs counter for our queues, at the time it published it."""

    count: int
    at: float


def settled(doc: Mapping[str, Any], queues: Iterable[str]) -> int | None:
    """Jobs of ``queues`` the worker of ``doc`` has settled; None if it serves none of them."""
    counts = doc.get("counts")
    served = set(doc.get("queues") or ())
    wanted = [q for q in queues if q in served]
    if not wanted or not isinstance(counts, Mapping):
        return None
    total = 0
    for q in wanted:
        per = counts.get(q) or {}
        if isinstance(per, Mapping):
            total += sum(int(per.get(o, 0) or 0) for o in SETTLED)
    return total


class DrainRate:
    """Smoothed jobs/s per busy worker for one TaskQueue (lives with its loop)."""

    def __init__(self, half_life: float = defaults.DRAIN_RATE_HALF_LIFE_SECONDS) -> None:
        self.half_life = half_life
        self.rate: float | None = None
        """The smoothed rate; None until a busy interval was seen."""
        self._last: dict[str, Sample] = {}
        self._waiting_since: float | None = None

    def update(
        self,
        docs: Iterable[Mapping[str, Any]],
        queues: Iterable[str],
        waiting: bool,
        now: float,
    ) -> float | None:
        """Feed the workers' latest documents; ``waiting``: jobs wait now; ``now``: wall clock.

        Each worker whose document is newer than the one seen before gives one sample
        (settled jobs over the seconds between its two publishes), counted only if jobs have
        waited since before that span began (the worker was saturated all along); the
        samples' mean is folded into the average, weighted by how long they cover.
        """
        if not waiting:
            self._waiting_since = None
        elif self._waiting_since is None:
            self._waiting_since = now
        since = self._waiting_since
        queues = list(queues)
        seen: dict[str, Sample] = {}
        rates: list[float] = []
        spans: list[float] = []
        for doc in docs:
            count = settled(doc, queues)
            if count is None:
                continue
            wid, at = str(doc.get("id", "")), float(doc.get("at") or 0.0)
            seen[wid] = Sample(count, at)
            before = self._last.get(wid)
            if before is None or at <= before.at or count < before.count:
                continue  # a new worker, no new publish, or a restarted counter
            if since is None or since > before.at:
                continue  # not saturated all through this span: says nothing of capacity
            rates.append((count - before.count) / (at - before.at))
            spans.append(at - before.at)
        self._last = seen  # workers gone are forgotten
        if rates:
            sample = sum(rates) / len(rates)
            span = sum(spans) / len(spans)
            if self.rate is None:
                self.rate = sample
            else:
                alpha = 1.0 - 0.5 ** (span / self.half_life)
                self.rate += alpha * (sample - self.rate)
        return self.rate
