"""Background processes that outlive the command that started them, tracked by pid files.

``up`` returns while etcd, the API server and friends keep running, so ``down`` (possibly
from another process) must find them again. Each pid file records the pid *and* the process
start time from /proc, so a recycled pid is never mistaken for ours and signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Popen objects of components this process started, kept so they are reaped (not GC'd while
#: running, which would raise ResourceWarning and leave zombies in long pytest sessions).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def proc_start_time(pid: int) -> int | None:
    """The start time (clock ticks since boot) of a live, non-zombie process, else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; parse after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass(frozen=True)
class ProcRef:
    """A process we started: pid, its start time and whether it leads its process group."""

    name: str
    pid: int
    start_time: int
    group: bool = True

    def alive(self) -> bool:
        return proc_start_time(self.pid) == self.start_time

    def signal(self, sig: int) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)

    def reap(self, timeout: float = 5.0) -> None:
        """Collect the exit status of a dead process if it is our child (no zombies left).

        A dying multi-threaded process shows as a zombie before it can be waited for, so wait
        up to ``timeout`` seconds.
        """
        proc = _CHILDREN.pop(self.pid, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
            except OSError:  # not our child: its parent (or init) reaps it
                return
            if pid or time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    def stop(self, grace: float) -> None:
        """SIGTERM the process (group), wait up to ``grace`` seconds, then SIGKILL."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not self.alive():
                self.reap()
                return
            time.sleep(0.1)
        self.signal(signal.SIGKILL)
        for _ in range(50):
            if not self.alive():
                self.reap()
                return
            time.sleep(0.1)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ProcRef | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    track: bool = True,
) -> tuple[subprocess.Popen[bytes], ProcRef]:
    """Start ``argv`` in its own session with output appended to ``log_file``.

    ``track`` keeps the Popen object so ``ProcRef.reap`` collects it; callers that keep and
    poll the Popen object themselves pass False.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    start = None
    for _ in range(100):
        start = proc_start_time(proc.pid)
        if start is not None or proc.poll() is not None:
            break
        time.sleep(0.01)
    if track:
        _CHILDREN[proc.pid] = proc
    ref = ProcRef(name, proc.pid, start if start is not None else -1)
    ref.save(pid_file)
    return proc, ref
