"""Runs the intersections machine with jobs pinned to a worker version among its steps
(pinmodel.py). Derandomized like test_intersections.py; ``KUBEQ_MODEL_EXPLORE=1`` searches
new examples."""

from __future__ import annotations

import os

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.model.conftest import machine_settings
from tests.model.pinmodel import PinnedIntersections

SETTINGS = machine_settings(int(os.environ.get("KUBEQ_PINNED_EXAMPLES", "60")), 40)


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("small_batches")
def test_pinned_intersections(redis_url: str) -> None:
    PinnedIntersections.url = redis_url
    run_state_machine_as_test(PinnedIntersections, settings=SETTINGS)
