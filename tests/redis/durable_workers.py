"""The ``start_durable`` fixture: real `kubeq worker durtasks` processes on the test Redis
(tests/redis/durtasks.py), killed at teardown."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.redis.workers import HERE, KUBEQ, WorkerProcess


class DurableWorker(WorkerProcess):
    """`kubeq worker durtasks ...` with its log file."""

    def __init__(self, url: str, log: Path, args: list[str]) -> None:
        self.log_path = log
        env = {**os.environ, "KUBEQ_REDIS_URL": url, "PYTHONPATH": str(HERE)}
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [KUBEQ, "worker", "durtasks", "--log-level", "DEBUG", *args],
            env=env,
            cwd=HERE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )


StartDurable = Callable[..., DurableWorker]


def start_durable(redis_url: str, tmp_path: Path) -> Iterator[StartDurable]:
    """The fixture's body; a test module registers it as
    ``_fixture = pytest.fixture(name="start_durable")(start_durable)``."""
    started: list[DurableWorker] = []

    def start(*args: str) -> DurableWorker:
        w = DurableWorker(redis_url, tmp_path / f"durable-{len(started)}.log", list(args))
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()
