"""Runs the intersections machine with fair queues mixed in (fairness.py): keyed jobs beside
every other feature, and the fairness state checked against the ready jobs after each step.

Fewer examples than test_intersections.py (the two share every other rule), derandomized
for the same reason; ``KUBEQ_MODEL_EXPLORE=1`` searches new ones.
"""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.model.conftest import machine_settings
from tests.model.fairness import FairIntersections

SETTINGS = machine_settings(60, 50)


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("small_batches")
def test_fair_intersections(redis_url: str) -> None:
    FairIntersections.url = redis_url
    run_state_machine_as_test(FairIntersections, settings=SETTINGS)
