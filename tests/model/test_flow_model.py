"""Runs the intersections machine with debounced and singleton calls and batch items among its
steps (flowmodel.py, batchmodel.py). Derandomized like test_intersections.py;
``KUBEQ_MODEL_EXPLORE=1`` searches new examples."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from kubeq.client import enqueue
from tests.model import known
from tests.model.batchmodel import BatchIntersections

EXPLORE = os.environ.get("KUBEQ_MODEL_EXPLORE") == "1"
SETTINGS = settings(
    derandomize=not EXPLORE,
    database=settings.default.database if EXPLORE else None,
    max_examples=int(os.environ.get("KUBEQ_FLOW_EXAMPLES", "60")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(enqueue, "ENQUEUE_BATCH", 2)
    yield


@pytest.mark.timeout(900)
@known.REPLAYS_NOT_DETERMINISTIC
@pytest.mark.usefixtures("small_batches")
def test_flow_intersections(redis_url: str) -> None:
    BatchIntersections.url = redis_url
    run_state_machine_as_test(BatchIntersections, settings=SETTINGS)
