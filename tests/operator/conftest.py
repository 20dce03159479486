"""Fixtures for the operator tests. Pure tests here need none; the cluster tests (marked
``cluster``) use ``operator`` (a running operator process, CRD installed) and ``api``, and
``apiserver_proxy``: the suite's Toxiproxy in front of the API server, for a test to cut.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.operator.opsupport import api, operator
from tests.support.toxiproxy import Proxy, ToxiproxyServer

__all__ = ["api", "operator"]


@pytest.fixture
def apiserver_proxy(
    toxiproxy: ToxiproxyServer, local_cluster: Any, request: pytest.FixtureRequest
) -> Iterator[Proxy]:
    """A proxy in front of the local API server (``opsupport.kubeconfig_via`` points a
    kubeconfig at it; ``set_enabled(False)`` cuts it), removed after the test."""
    proxy = toxiproxy.proxy(request.node.name, local_cluster.ports["apiserver"])
    yield proxy
    proxy.delete()
