"""Runs the intersections machine with durable execution mixed in (durable.py): steps, sleeps,
waits and signals beside partitions, limits, TTLs, abort, purge and workflows, with the
steps' fencing and the sleeping index checked after each step. ``KUBEQ_MODEL_EXPLORE=1``
searches new examples.
"""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.model.conftest import machine_settings
from tests.model.durable import DurableRules
from tests.model.intersections import Intersections

SETTINGS = machine_settings(100, 50)


class DurableIntersections(Intersections, DurableRules):
    """The intersections machine, and durable steps, sleeps, waits and signals."""


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("small_batches")
def test_durable_intersections(redis_url: str) -> None:
    DurableIntersections.url = redis_url
    run_state_machine_as_test(DurableIntersections, settings=SETTINGS)
