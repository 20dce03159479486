"""Fixtures shared by every test tier.

- ``redis_server`` (session): a real redis-server on a free loopback port.
- ``redis_url``: that server's URL, flushed before each test.
  Both come from kubeq's pytest plugin (``kubeq_redis_server``, ``kubeq_redis``).
- ``toxiproxy`` (session): one toxiproxy-server on a free loopback port, the suite's TCP proxy
  (tests/support/toxiproxy.py): the fault tier's in front of Redis, the operator tier's in
  front of the API server.
- the local Kubernetes cluster fixtures (``local_cluster``, ``k8s_client``, ``kubectl``,
  ``k8s_namespace``, ``cluster_kubeconfig``) from hack/cluster/localcluster/pytest_plugin.py,
  imported here once so tests/cluster and tests/e2e share one cluster per session.
- ``make test`` runs two pytest processes side by side (hack/test-lanes.sh): the tests
  marked ``control_plane`` (every test of the local cluster, marked here), the fault tier,
  the model tier and two files of the redis tier (marked ``cluster_lane`` here) in one, the
  rest in the other; the real-node tier (marked ``node`` too: its own control plane with a
  real kubelet) runs in the other, to even the lanes out.

Hypothesis runs without its per-example deadline: tests never assert wall-clock times, and
on a shared 2-core machine a pure function's example took 1.95 s once (a 200 ms deadline
failed a correct property).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("kubeq", deadline=None)
settings.load_profile("kubeq")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack" / "cluster"))

from localcluster.pytest_plugin import (  # noqa: E402
    cluster_kubeconfig,
    k8s_client,
    k8s_namespace,
    kubectl,
    local_cluster,
)
from tests.support.redisserver import RedisServer  # noqa: E402
from tests.support.toxiproxy import ToxiproxyServer  # noqa: E402

__all__ = ["cluster_kubeconfig", "k8s_client", "k8s_namespace", "kubectl", "local_cluster"]


CONTROL_PLANE = ("cluster", "e2e", "node")
"""Markers of the tests that share the session's local Kubernetes cluster (and the real node)."""

CONTROL_PLANE_DIRS = tuple(ROOT / "tests" / d for d in ("cluster", "e2e", "gateway", "node"))
"""Folders whose every test is on the local cluster (their conftests add the markers)."""

CLUSTER_LANE_PATHS = (
    ROOT / "tests" / "model",
    ROOT / "tests" / "redis" / "test_sweep_turns.py",
    ROOT / "tests" / "redis" / "test_idle_cost.py",
)
"""Folders and files that need no cluster but run in the cluster's lane (marked
``cluster_lane``): the other lane holds the real node's tier too, and was the longer by 9
minutes (31:43 against 22:40 on 2026-12-07) before the model tier (about 3 to 4 of them)
moved, and still by 2.4 minutes after it (30:14 against 27:48, a cold run of 2026-12-07);
the two redis files are about 80 s of waiting on idle workers."""


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects, and before the tiers' conftests
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks ``control_plane`` every test of the local cluster: ``make test`` runs them in one
    pytest process (one cluster per session, started and stopped by it, one operator
    fixture) beside another that runs the rest (hack/test-lanes.sh). Decided from what
    collection knows (the fixtures a test uses, its module's markers, its folder), as the
    tiers' conftests mark their tests after this runs."""
    for item in items:
        uses_cluster = "local_cluster" in getattr(item, "fixturenames", ())
        marked = any(item.get_closest_marker(m) for m in CONTROL_PLANE)
        path = item.path.resolve()
        folder = any(d in path.parents for d in CONTROL_PLANE_DIRS)
        if uses_cluster or marked or folder:
            item.add_marker(pytest.mark.control_plane)
        elif any(p == path or p in path.parents for p in CLUSTER_LANE_PATHS):
            item.add_marker(pytest.mark.cluster_lane)


@pytest.fixture(scope="session")
def redis_server(kubeq_redis_server: RedisServer) -> RedisServer:
    """kubeq's own pytest plugin (kubeq.testing) starts it, as it does for users' tests."""
    return kubeq_redis_server


@pytest.fixture(scope="session")
def toxiproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToxiproxyServer]:
    server = ToxiproxyServer(tmp_path_factory.mktemp("toxiproxy"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(kubeq_redis: str) -> str:
    """The session's Redis, emptied for this test (restarted first if a test stopped it)."""
    return kubeq_redis
