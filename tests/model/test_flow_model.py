"""Runs the intersections machine with debounced and singleton calls and batch items among its
steps (flowmodel.py, batchmodel.py), expiring items and item aborts (batchitems.py).
Derandomized like test_intersections.py; ``KUBEQ_MODEL_EXPLORE=1`` searches new examples."""

from __future__ import annotations

import os

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.model.batchitems import BatchItemIntersections
from tests.model.conftest import machine_settings

SETTINGS = machine_settings(int(os.environ.get("KUBEQ_FLOW_EXAMPLES", "60")), 40)


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("small_batches")
def test_flow_intersections(redis_url: str) -> None:
    BatchItemIntersections.url = redis_url
    run_state_machine_as_test(BatchItemIntersections, settings=SETTINGS)
