"""The whole loop: control plane + node agent + real Redis + the operator process + real
worker processes as pods. Every test in this folder is marked ``e2e``. The fixtures are the
operator tests' (tests/operator/opsupport.py)."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "operator"))

from opsupport import api, operator  # noqa: E402

__all__ = ["api", "operator"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents and not item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.e2e)
