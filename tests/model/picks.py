"""Draws whose shape never depends on the system under test.

The machines drive real workers against a real redis-server, so which runs a worker holds,
which jobs are still live or whether a parent's result has expired can differ from one
execution of the same steps to the next (leases, rate limits and TTLs follow the clock).
Hypothesis demands that the same prefix of choices meets the same kinds of choice: a
``sampled_from`` over a list whose length comes from the system, a precondition that reads
it or an ``assume`` on it makes the data generation depend on timing, and Hypothesis stops
with ``FlakyStrategyDefinition``. So every pick among such things draws an index from a fixed
range and takes it modulo the choices there are, and a rule with nothing to act on does
nothing instead of being filtered out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from hypothesis import strategies as st

T = TypeVar("T")

SPREAD = 16
"""Indices drawn per pick: more than the machines ever hold, so every choice is reachable."""


def pick(data: st.DataObject, choices: Sequence[T]) -> T | None:
    """One of ``choices``, or None when there are none (the draw is made either way)."""
    i = data.draw(st.integers(0, SPREAD - 1))
    return choices[i % len(choices)] if choices else None


def pick_some(data: st.DataObject, choices: Sequence[T], most: int) -> list[T]:
    """One to ``most`` of ``choices`` (repeats allowed), or none when there are none."""
    idx = data.draw(st.lists(st.integers(0, SPREAD - 1), min_size=1, max_size=most))
    return [choices[i % len(choices)] for i in idx] if choices else []
