"""Runs the intersections machine with job search among its steps (searchmodel.py).
Derandomized like test_intersections.py; ``KUBEQ_MODEL_EXPLORE=1`` searches new examples."""

from __future__ import annotations

import os

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.model.conftest import machine_settings
from tests.model.searchmodel import SearchIntersections

SETTINGS = machine_settings(int(os.environ.get("KUBEQ_SEARCH_EXAMPLES", "40")), 40)


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("small_batches")
def test_search_intersections(redis_url: str) -> None:
    SearchIntersections.url = redis_url
    run_state_machine_as_test(SearchIntersections, settings=SETTINGS)
