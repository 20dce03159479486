"""kubeq's pytest plugin (registered through the ``pytest11`` entry point; nothing to add
to a conftest): test task code against the real thing in one line.

- ``kubeq_redis``: the URL of a real redis-server on a free loopback port, started once per
  session (and stopped at its end), emptied before each test;
- ``kubeq_worker``: ``drain(app, queues=None)``, a real in-process worker run until the
  queues are empty (see ``kubeq.testing.drain``)::

      def test_signup(kubeq_redis, kubeq_worker):
          app = myproject.tasks.app
          app.redis_url = kubeq_redis   # before the App's first use (or set KUBEQ_REDIS_URL
          job = send_welcome.delay("ada@example.com")   # before the App is created)
          assert kubeq_worker(app).finished == 1
          assert job.result(timeout=1) == "sent"

The server needs ``redis-server`` on the PATH; a test that asks for ``kubeq_redis`` without
it fails with the install command, it is not skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from kubeq.testing.drain import DrainReport, drain
from kubeq.testing.server import RedisServer


@pytest.fixture(scope="session")
def kubeq_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's redis-server (started on first use, stopped at the session's end)."""
    server = RedisServer(Path(tmp_path_factory.mktemp("kubeq-redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def kubeq_redis(kubeq_redis_server: RedisServer) -> str:
    """The URL of the session's redis-server, emptied for this test."""
    if kubeq_redis_server.proc is None or kubeq_redis_server.proc.poll() is not None:
        kubeq_redis_server.start()
    client = redis.Redis.from_url(kubeq_redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return kubeq_redis_server.url


@pytest.fixture
def kubeq_worker(kubeq_redis: str) -> Callable[..., DrainReport]:
    """``drain``: run a real worker on an App's queues until they are empty."""
    return drain
