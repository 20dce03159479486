"""Fixtures of the fault tier: Toxiproxy in front of the test's real redis-server, and real
`kubeq worker` processes that reach Redis only through it.

- ``proxy``: a fresh proxy in front of the session's Redis (its toxics die with the test), on
  the session's ``toxiproxy`` server (tests/conftest.py, tests/support/toxiproxy.py).
- ``ledger``: the directory the tasks append their executions to (see ftasks.py).
- ``start_worker``: ``start_worker("--queue", "q", ...)`` -> a worker connected through the
  proxy (killed at teardown).
- ``app`` / ``r``: the test's own clients, straight to Redis (never through the proxy), so
  that what a test enqueues or reads is not itself subject to the faults.

Every test here is marked ``faults`` (``make test`` runs them; ``pytest -m faults`` alone).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import kubeq
from tests.faults.fleet import REPORTS, Ledger, StartWorker, WorkerProcess
from tests.support.redisserver import RedisServer
from tests.support.toxiproxy import Proxy, ToxiproxyServer

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents and not item.get_closest_marker("faults"):
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTS:
        terminalreporter.section("fault scenarios: jobs per scenario")
        for figures in REPORTS:
            terminalreporter.write_line(figures.line())


@pytest.fixture
def proxy(
    toxiproxy: ToxiproxyServer,
    redis_server: RedisServer,
    redis_url: str,
    request: pytest.FixtureRequest,
) -> Iterator[Proxy]:
    p = toxiproxy.proxy(request.node.name, redis_server.port)
    yield p
    p.delete()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    path = tmp_path / "ledger"
    path.mkdir()
    return Ledger(path)


@pytest.fixture
def start_worker(proxy: Proxy, ledger: Ledger, tmp_path: Path) -> Iterator[StartWorker]:
    started: list[WorkerProcess] = []

    def start(*args: str, url: str | None = None) -> WorkerProcess:
        w = WorkerProcess(
            url or proxy.url, ledger.path, tmp_path / f"worker-{len(started)}.log", list(args)
        )
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
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
