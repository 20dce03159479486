"""The model-based tier: Hypothesis state machines against the session's real redis-server.

Every test here needs Redis, so it is marked ``redis`` (``make test-redis`` runs it too).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from kubeq.client import enqueue

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents and not item.get_closest_marker("redis"):
            item.add_marker(pytest.mark.redis)


EXPLORE = os.environ.get("KUBEQ_MODEL_EXPLORE") == "1"
"""Search new examples with Hypothesis's database instead of the derandomized ones."""


def machine_settings(max_examples: int, steps: int) -> settings:
    """A machine's run: derandomized for ``make test`` (the machines drive real workers and
    real expiry, and CI must say the same thing twice); ``KUBEQ_MODEL_EXPLORE=1`` explores."""
    return settings(
        derandomize=not EXPLORE,
        database=settings.default.database if EXPLORE else None,
        max_examples=max_examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Batches of two jobs, so a bulk enqueue of a few jobs takes the streamed path."""
    monkeypatch.setattr(enqueue, "ENQUEUE_BATCH", 2)
    yield
