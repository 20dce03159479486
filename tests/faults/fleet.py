"""Workers behind the proxy, the execution ledger, and the verdict every fault scenario ends with.

Why a module of its own: each scenario (heartbeat, fetch, ack, bandwidth, resets, the soak)
ends the same way - wait until every job reached a final state in Redis, read how often each
job really ran from the ledger the tasks wrote (outside Redis), and check that every job
finished exactly once in Redis with exactly its result. Figures (sent, finished, lost, ran
twice, stall seconds) are kept per scenario and printed at the end of the session.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ftasks

import kubeq

HERE = Path(__file__).resolve().parent
KUBEQ = str(Path(sys.executable).with_name("kubeq"))
FINAL = ("finished", "failed", "cancelled")


class WorkerProcess:
    """One `kubeq worker ftasks ...` process connected through ``url`` (the proxy)."""

    def __init__(self, url: str, ledger: Path, log: Path, args: list[str]) -> None:
        self.log_path = log
        env = {
            **os.environ,
            "KUBEQ_REDIS_URL": url,
            "KUBEQ_FAULTS_LEDGER": str(ledger),
            "PYTHONPATH": str(HERE),
        }
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [KUBEQ, "worker", "ftasks", "--log-level", "DEBUG", *args],
            env=env,
            cwd=HERE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self._log.close()


StartWorker = Callable[..., WorkerProcess]
"""``start_worker(*args, url=None)``: a worker process through the proxy (or ``url``)."""


@dataclass
class Ledger:
    """What the tasks wrote: one (event, job, pid, time) per line, across every process."""

    path: Path

    def events(self) -> list[tuple[str, str, int, float]]:
        out: list[tuple[str, str, int, float]] = []
        for f in sorted(self.path.glob("*.log")):
            for line in f.read_text().splitlines():
                event, job, pid, at = line.split()
                out.append((event, job, int(pid), float(at)))
        return out

    def mark_sent(self, tag: str) -> None:
        """The producer's line: when jobs were sent (stall times count from here)."""
        with open(self.path / "producer.log", "a") as f:
            f.write(f"sent {tag} {os.getpid()} {time.time():.3f}\n")

    def runs(self) -> Counter[str]:
        """Executions started per job (a run cut short by a kill counts too)."""
        return Counter(job for event, job, _, _ in self.events() if event == "start")

    def started(self, job: str) -> int:
        return self.runs()[job]

    def ended(self, job: str) -> int:
        return sum(1 for e, j, _, _ in self.events() if e == "end" and j == job)


@dataclass
class Figures:
    """One scenario's outcome, as a report gives it."""

    scenario: str
    sent: int
    finished: int
    lost: list[str] = field(default_factory=list)
    """Jobs that did not finish with exactly their result (with what happened to them)."""
    ran_twice: int = 0
    """Jobs whose body started more than once (at-least-once delivery: reported)."""
    max_runs: int = 0
    stall_seconds: float = 0.0
    """The longest time without a job completing, from the first send to the last end."""
    notes: str = ""

    def line(self) -> str:
        return (
            f"{self.scenario:<34} sent {self.sent:>5}  finished {self.finished:>5}  "
            f"lost {len(self.lost):>3}  ran twice {self.ran_twice:>3} (max runs "
            f"{self.max_runs})  stall {self.stall_seconds:5.1f} s {self.notes}"
        )


REPORTS: list[Figures] = []
"""Every scenario's figures in this session (printed by conftest's terminal summary)."""


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll until predicate() is truthy; fail naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def enqueue_work(
    app: kubeq.App,
    ledger: Ledger,
    queue: str,
    n: int,
    seconds: float = 0.0,
    pad: int = 0,
    tag: str = "j",
) -> dict[str, str]:
    """Enqueue ``n`` ``ftasks.work`` jobs (ids ``<tag>-<i>``) straight to Redis in one round
    trip; returns job id -> the result each must finish with."""
    ledger.mark_sent(tag)
    calls = [
        ftasks.work.s(f"{tag}-{i}", seconds, "x" * pad).set(job_id=f"{tag}-{i}", queue=queue)
        for i in range(n)
    ]
    app.queue(queue).enqueue_many(calls)
    return {f"{tag}-{i}": ftasks.expected(f"{tag}-{i}", pad) for i in range(n)}


def wait_final(app: kubeq.App, queue: str, ids: list[str], timeout: float) -> None:
    """Wait until every job is in a final state in Redis, or the timeout passes."""
    q = app.queue(queue)
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        pipe = app.redis.pipeline(transaction=False)
        for job_id in pending:
            pipe.hget(q.keys.job(job_id), "status")
        statuses = pipe.execute()
        pending = [
            j for j, s in zip(pending, statuses, strict=True) if (s or b"").decode() not in FINAL
        ]
        if pending:
            time.sleep(0.2)


def verdict(
    scenario: str,
    app: kubeq.App,
    queue: str,
    expected: dict[str, str],
    ledger: Ledger,
    timeout: float = 120,
    notes: str = "",
) -> Figures:
    """Wait for every job to end, then count: ``expected`` maps job id -> its result.

    A job is lost unless Redis says ``finished`` with exactly its result AND its body ran
    to its end at least once (in the ledger). The figures are recorded for the summary.
    """
    ids = list(expected)
    wait_final(app, queue, ids, timeout)
    q = app.queue(queue)
    runs = ledger.runs()
    events = ledger.events()
    ends_by_job = Counter(j for e, j, _, _ in events if e == "end")
    lost: list[str] = []
    finished = 0
    for job_id, want in expected.items():
        info = q.job(job_id).info()
        status = str(info.status) if info is not None else "missing"
        result = json.loads(info.result) if info is not None and info.result else None
        if status == "finished" and result == want and ends_by_job[job_id] >= 1:
            finished += 1
        else:
            why = (info.reason or info.error) if info is not None else "no job hash"
            lost.append(f"{job_id}: {status}, ran {runs[job_id]}x, result {result!r} ({why})")
    first = [at for e, _, _, at in events if e == "sent"] or [
        at for e, _, _, at in events if e == "start"
    ]
    stamps = sorted(first)[:1] + sorted(at for e, _, _, at in events if e == "end")
    stall = max((b - a for a, b in itertools.pairwise(stamps)), default=0.0)
    figures = Figures(
        scenario=scenario,
        sent=len(ids),
        finished=finished,
        lost=lost,
        ran_twice=sum(1 for j in ids if runs[j] > 1),
        max_runs=max((runs[j] for j in ids), default=0),
        stall_seconds=stall,
        notes=notes,
    )
    REPORTS.append(figures)
    print(figures.line())
    return figures


def check(figures: Figures) -> None:
    """The assertion every scenario ends with: nothing lost, every job with its result."""
    assert not figures.lost, (
        f"{figures.scenario}: {len(figures.lost)} of {figures.sent} jobs did not finish with "
        f"their result:\n  " + "\n  ".join(figures.lost[:20])
    )
    assert figures.finished == figures.sent
