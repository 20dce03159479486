"""Real `kubeq` subprocesses on the test Redis, for the redis tier.

``WorkerProcess`` is one `kubeq worker qtasks ...` (or another tasks module) with its log
file; ``StartWorker`` is the type of the ``start_worker`` fixture (tests/redis/conftest.py)
that starts them and kills them at teardown; ``run(redis_url, *args)`` runs one `kubeq`
command to its end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
KUBEQ = str(Path(sys.executable).with_name("kubeq"))


class WorkerProcess:
    """One `kubeq worker qtasks ...` process (``module``: another tasks module of this
    directory) with its log file."""

    def __init__(self, url: str, log: Path, args: list[str], module: str = "qtasks") -> None:
        self.log_path = log
        env = {**os.environ, "KUBEQ_REDIS_URL": url, "PYTHONPATH": str(HERE)}
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [KUBEQ, "worker", module, "--log-level", "DEBUG", *args],
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


def run(redis_url: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBEQ_REDIS_URL": redis_url, "COLUMNS": "200"}
    return subprocess.run(
        [KUBEQ, *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        input=input,
    )
