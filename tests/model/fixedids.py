"""Job ids the same in every execution of an example.

A job without an id of its own gets one from ``kubeq.store.ids`` (microseconds, a sequence
and 48 random bits), and a partitioned queue routes such a job by its id's hash. With real
ids, the same steps put a chord member or a bulk job on ``pq#0`` in one execution and on
``pq#1`` in the next, so the workers fetch other jobs and the example is not replayed as it
ran (shrinking then reports another example, or none). The machines install these ids for
each example: a clock that moves one microsecond per id, a fresh sequence and seeded random
bits, in ``new_job_id``'s format and order, so they still sort by creation.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from kubeq.store import ids

EPOCH_US = 1_800_000_000_000_000
"""Where the fixed clock starts (2027): any fixed value keeps the ids' format and order."""


class FixedClock:
    """Stands in for the ``time`` module inside ``kubeq.store.ids`` (only ``time_ns``)."""

    def __init__(self) -> None:
        self._us = itertools.count(EPOCH_US)

    def time_ns(self) -> int:
        return next(self._us) * 1000


class FixedIds:
    """Installed for one example (``install``), undone at its teardown (``restore``)."""

    def __init__(self) -> None:
        self._saved: dict[str, Any] = {}

    def install(self) -> None:
        self._saved = {name: getattr(ids, name) for name in ("time", "_random", "_last")}
        ids.time = FixedClock()  # type: ignore[assignment]
        ids._random = random.Random(0)
        ids._last = 0

    def restore(self) -> None:
        for name, value in self._saved.items():
            setattr(ids, name, value)
