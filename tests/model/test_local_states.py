"""Runs the local states machine (localstates.py): where a job waits inside one real worker
(held until placed, leased ahead, parked in the thread lane, running), beside aborts, lost
leases, slots that turned out slow and the SIGTERM drain.

Derandomized for ``make test``, as the other machines (conftest.py); ``KUBEQ_MODEL_EXPLORE=1``
searches new examples.
"""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from kubeq import defaults
from tests.model.conftest import machine_settings
from tests.model.localstates import LocalStates
from tests.model.localworker import LANE_AHEAD

SETTINGS = machine_settings(150, 50)


@pytest.mark.timeout(900)
def test_local_states(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # one job parked in the thread lane beyond the free slots (not 32), so that a fetch of
    # four fills every place: two running, one parked, one leased ahead in the worker
    monkeypatch.setattr(defaults, "LANE_AHEAD", LANE_AHEAD)
    LocalStates.url = redis_url
    run_state_machine_as_test(LocalStates, settings=SETTINGS)
