"""Fixtures for the tests that run against the local Kubernetes control plane.

The fixtures live in hack/cluster/localcluster/pytest_plugin.py so that other folders (the
e2e tests) can import them the same way; ``pytest_plugins`` is only honoured in the rootdir
conftest, hence the explicit import.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack" / "cluster"))

from localcluster.pytest_plugin import (
    cluster_kubeconfig,
    k8s_client,
    k8s_namespace,
    kubectl,
    local_cluster,
)

__all__ = ["cluster_kubeconfig", "k8s_client", "k8s_namespace", "kubectl", "local_cluster"]

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder needs the cluster: make sure it carries the marker."""
    for item in items:
        if HERE in item.path.resolve().parents and not item.get_closest_marker("cluster"):
            item.add_marker(pytest.mark.cluster)
