"""Runs the intersections machine (intersections.py): features that meet, driven through the
public client and the worker's own fetch, ack, heartbeat and hand-off code.

Its size is chosen so the whole model tier stays within a few minutes on two busy cores;
a failure shrinks to its smallest example within the timeout. ``make test`` runs the same
150 examples every time (derandomized: the machine drives real workers and real expiry, whose
timing can make a random example impossible to replay, and CI must say the same thing twice);
``KUBEQ_MODEL_EXPLORE=1`` searches new examples, with Hypothesis's database, to find more.

"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from kubeq.client import enqueue
from tests.model import known
from tests.model.intersections import Intersections

EXPLORE = os.environ.get("KUBEQ_MODEL_EXPLORE") == "1"
SETTINGS = settings(
    derandomize=not EXPLORE,
    database=settings.default.database if EXPLORE else None,
    max_examples=150,
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
def test_intersections(redis_url: str) -> None:
    Intersections.url = redis_url
    run_state_machine_as_test(Intersections, settings=SETTINGS)
