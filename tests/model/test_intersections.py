"""Runs the intersections machine (intersections.py): features that meet, driven through the
public client and the worker's own fetch, ack, heartbeat and hand-off code.

Its size is chosen so the whole model tier stays within a few minutes on two busy cores;
a failure shrinks to its smallest example within the timeout. ``make test`` runs the same
150 examples every time (derandomized: the machine drives real workers and real expiry, whose
timing can make a random example impossible to replay, and CI must say the same thing twice);
``KUBEQ_MODEL_EXPLORE=1`` searches new examples, with Hypothesis's database, to find more.

"""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.model.conftest import machine_settings
from tests.model.intersections import Intersections

SETTINGS = machine_settings(150, 50)


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("small_batches")
def test_intersections(redis_url: str) -> None:
    Intersections.url = redis_url
    run_state_machine_as_test(Intersections, settings=SETTINGS)
