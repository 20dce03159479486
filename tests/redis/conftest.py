"""Fixtures of the redis tier: ``start_worker`` (real `kubeq worker qtasks` subprocesses on
the test Redis, tests/redis/workers.py), ``app`` and ``r`` on the test's ``redis_url`` (the
session's redis-server, or its Redis Cluster for a test marked ``also_redis_cluster``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import kubeq
import kubeq.store.connections
from tests.redis.workers import StartWorker, WorkerProcess
from tests.support.cluster import ClusterTopology

HERE = Path(__file__).resolve().parent


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``also_redis_cluster`` runs on the session's redis-server and again on
    the session's Redis Cluster (3 masters + 3 replicas): every fixture built on
    ``redis_url`` (app, r, start_worker) follows it."""
    marked = metafunc.definition.get_closest_marker("also_redis_cluster")
    if marked and "redis_url" in metafunc.fixturenames:
        metafunc.parametrize("redis_url", ["redis", "redis-cluster"], indirect=True)


@pytest.fixture(scope="session")
def cluster_topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTopology]:
    """One real Redis Cluster for the session, started on first use."""
    t = ClusterTopology(tmp_path_factory.mktemp("redis-cluster"))
    t.start()
    yield t
    t.stop()


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, kubeq_redis: str) -> str:
    """The session's Redis (emptied), or with the ``redis-cluster`` parameter the session's
    Redis Cluster (every master emptied; a master killed by an earlier test has been
    replaced by its replica)."""
    if getattr(request, "param", "redis") == "redis-cluster":
        topology: ClusterTopology = request.getfixturevalue("cluster_topology")
        topology.flush()
        return topology.url
    return kubeq_redis


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents and not item.get_closest_marker("redis"):
            item.add_marker(pytest.mark.redis)


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[StartWorker]:
    """start_worker("--queue", "q", ...) -> a running worker process (killed at teardown)."""
    started: list[WorkerProcess] = []

    def start(*args: str, env_url: str | None = None, module: str = "qtasks") -> WorkerProcess:
        """``env_url``: another Redis than the session's (e.g. a Sentinel URL); ``module``:
        another tasks module than qtasks."""
        log = tmp_path / f"worker-{len(started)}.log"
        w = WorkerProcess(env_url or redis_url, log, list(args), module)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def app(redis_url: str) -> Iterator[kubeq.App]:
    application = kubeq.App(redis_url)
    yield application
    application.close()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = kubeq.store.connections.sync_client(redis_url)  # a cluster client on a cluster
    yield client
    client.close()
