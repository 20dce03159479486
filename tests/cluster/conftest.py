"""Fixtures for the tests that run against the local Kubernetes control plane.

The fixtures live in hack/cluster/localcluster/pytest_plugin.py and are imported once by
tests/conftest.py, so this folder and tests/e2e share one cluster per session.
"""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder needs the cluster: make sure it carries the marker."""
    for item in items:
        if HERE in item.path.resolve().parents and not item.get_closest_marker("cluster"):
            item.add_marker(pytest.mark.cluster)
