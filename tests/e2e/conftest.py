"""The whole loop: control plane + node agent + real Redis + the operator process + real
worker processes as pods. Every test in this folder is marked ``e2e``. The fixtures are the
operator tests' (tests/operator/opsupport.py)."""

from pathlib import Path

import pytest

from tests.operator.opsupport import api, operator

HERE = Path(__file__).resolve().parent

__all__ = ["api", "operator"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents and not item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.e2e)
