"""What a worker counts whether or not it serves ``/metrics``: the jobs it settled, by queue
and outcome (its document on the Workers page shows them), and the stand-in for the
Prometheus families when no metrics port is set.

The Prometheus client (metrics.py) is imported only by a worker that serves ``/metrics``
(``--metrics-port``); a worker without it records into ``UNSERVED``, whose families take
the same calls and keep nothing, so the loop's code is the same either way.
"""

from __future__ import annotations

from typing import Any

JobCounts = dict[str, dict[str, int]]
"""Jobs settled since the worker started: queue -> outcome -> count."""


def add(counts: JobCounts, queue: str, outcome: str, n: int) -> None:
    """Count ``n`` more jobs of ``queue`` settled with ``outcome``."""
    per = counts.setdefault(queue, {})
    per[outcome] = per.get(outcome, 0) + n


class _Nothing:
    """A metric family (or its labelled child) that records nothing."""

    def labels(self, *labels: str) -> _Nothing:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


class Unserved:
    """The families of ``WorkerMetrics`` (metrics.py), each recording nothing."""

    def __init__(self) -> None:
        nothing: Any = _Nothing()
        self.jobs = self.duration = self.wait = self.in_progress = self.redis_errors = nothing


UNSERVED = Unserved()
