"""The worker processes a bench scenario starts, and what they cost: memory and CPU read
from /proc for every process of the worker's session (a supervisor, a prefork child, a work
horse), so what a worker forks is counted with it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent


class WorkerProcess:
    """One worker process (its own session, so its children go with it)."""

    def __init__(self, argv: list[str], log: Path, redis_url: str) -> None:
        # BENCH_PYTHONPATH (run.py --kubeq-path): a copy of the library with a proposed change
        path = os.pathsep.join(p for p in (os.environ.get("BENCH_PYTHONPATH"), str(HERE)) if p)
        env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
        env["KUBEQ_REDIS_URL"] = redis_url
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=HERE,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def memory(self) -> dict[str, float]:
        """RSS and PSS (MB) summed over every process of the worker's session."""
        return session_memory(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # whatever the worker forked and left behind in its session
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def session_memory(sid: int) -> dict[str, float]:
    """RSS and PSS in MB of every process whose session id is ``sid`` (read from /proc)."""
    rss = pss = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            # fields after the command (which may hold spaces): state ppid pgrp session ...
            if int(stat.rsplit(")", 1)[1].split()[3]) != sid:
                continue
            with open(f"/proc/{entry}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or a kernel thread without smaps
    return {"rss_mb": rss / 1024, "pss_mb": pss / 1024}


def session_cpu(sid: int) -> float:
    """CPU seconds (user + system, with reaped children's) of the processes of session ``sid``."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class MemorySampler:
    """The peak memory of some worker processes, sampled every 0.2 s in a thread."""

    def __init__(self, workers: list[WorkerProcess]) -> None:
        self.workers = workers
        self.peak = {"rss_mb": 0.0, "pss_mb": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            now = {"rss_mb": 0.0, "pss_mb": 0.0}
            for w in self.workers:
                for k, v in w.memory().items():
                    now[k] += v
            for k, v in now.items():
                self.peak[k] = max(self.peak[k], v)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {k: round(v, 1) for k, v in self.peak.items()}
