"""Worker processes for the redis tier: real `kubeq worker` subprocesses on the test Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

import kubeq

HERE = Path(__file__).resolve().parent
KUBEQ = str(Path(sys.executable).with_name("kubeq"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents and not item.get_closest_marker("redis"):
            item.add_marker(pytest.mark.redis)


class WorkerProcess:
    """One `kubeq worker qtasks ...` process with its log file."""

    def __init__(self, url: str, log: Path, args: list[str]) -> None:
        self.log_path = log
        env = {**os.environ, "KUBEQ_REDIS_URL": url, "PYTHONPATH": str(HERE)}
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [KUBEQ, "worker", "qtasks", "--log-level", "DEBUG", *args],
            env=env,
            cwd=HERE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self._log.close()


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[StartWorker]:
    """start_worker("--queue", "q", ...) -> a running worker process (killed at teardown)."""
    started: list[WorkerProcess] = []

    def start(*args: str, env_url: str | None = None) -> WorkerProcess:
        """``env_url``: another Redis than the session's (e.g. a Sentinel URL)."""
        log = tmp_path / f"worker-{len(started)}.log"
        w = WorkerProcess(env_url or redis_url, log, list(args))
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
