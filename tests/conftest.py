"""Fixtures shared by every test tier.

- ``redis_server`` (session): a real redis-server on a free loopback port.
- ``redis_url``: that server's URL, flushed before each test.
- the local Kubernetes cluster fixtures (``local_cluster``, ``k8s_client``, ``kubectl``,
  ``k8s_namespace``, ``cluster_kubeconfig``) from hack/cluster/localcluster/pytest_plugin.py,
  imported here once so tests/cluster and tests/e2e share one cluster per session.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack" / "cluster"))

from support.redisserver import RedisServer  # noqa: E402

from localcluster.pytest_plugin import (  # noqa: E402
    cluster_kubeconfig,
    k8s_client,
    k8s_namespace,
    kubectl,
    local_cluster,
)

__all__ = ["cluster_kubeconfig", "k8s_client", "k8s_namespace", "kubectl", "local_cluster"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test (restarted first if a test stopped it)."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url
