"""Runs the intersections machine with fair queues mixed in (fairness.py): keyed jobs beside
every other feature, and the fairness state checked against the ready jobs after each step.

Fewer examples than test_intersections.py (the two share every other rule), derandomized
for the same reason; ``KUBEQ_MODEL_EXPLORE=1`` searches new ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from kubeq.client import enqueue
from tests.model import known
from tests.model.fairness import FairIntersections

EXPLORE = os.environ.get("KUBEQ_MODEL_EXPLORE") == "1"
SETTINGS = settings(
    derandomize=not EXPLORE,
    database=settings.default.database if EXPLORE else None,
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Batches of two jobs, so a bulk enqueue of a few jobs takes the streamed path."""
    monkeypatch.setattr(enqueue, "ENQUEUE_BATCH", 2)
    yield


@pytest.mark.timeout(900)
@known.REPLAYS_NOT_DETERMINISTIC
@pytest.mark.usefixtures("small_batches")
def test_fair_intersections(redis_url: str) -> None:
    FairIntersections.url = redis_url
    run_state_machine_as_test(FairIntersections, settings=SETTINGS)
