"""A late heartbeat, an abort and a flushed script cache, with real worker processes.

A lease token holds its job until the job is delivered again or ends (docs/architecture.md,
Guarantees). A heartbeat is made late for real: the worker is stopped (SIGSTOP) until its
lease has expired, a fetch by another worker runs meanwhile (it finds the lease expired),
and the worker is resumed (SIGCONT). Whatever comes first then, the worker's own fetch or
its heartbeat, the run in progress keeps its token: its progress is stored, its
concurrency slot stays taken, its expiry does not end it, and it runs once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import leasetasks
import pytest
import redis

import kubeq
from kubeq import defaults
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, run_pipeline
from kubeq.store.wire import fetch_args
from tests.redis.helpers import max_running, wait_until
from tests.redis.workers import KUBEQ

HERE = Path(__file__).resolve().parent
Q = "default"


class Worker:
    """One `kubeq worker leasetasks` process."""

    def __init__(self, url: str, log: Path, args: list[str]) -> None:
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [KUBEQ, "worker", "leasetasks", "--log-level", "DEBUG", *args],
            env={**os.environ, "KUBEQ_REDIS_URL": url, "PYTHONPATH": str(HERE)},
            cwd=HERE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def worker(redis_url: str, r: redis.Redis, tmp_path: Path) -> Iterator[Worker]:
    """A worker with a 2 s lease (a heartbeat every 0.5 s) and two slots."""
    w = Worker(redis_url, tmp_path / "worker.log", ["--concurrency", "2", "--lease", "2"])
    wait_until(lambda: r.zcard(QueueKeys.of(Q).workers) > 0, 30, "the worker to register")
    yield w
    w.stop()


def send(app: kubeq.App, call: kubeq.options.Call) -> kubeq.Job:
    return app.enqueue_many([call])[0]


def server_ms(r: redis.Redis) -> int:
    sec, usec = r.time()
    return int(sec) * 1000 + int(usec) // 1000


def late_heartbeat(r: redis.Redis, w: Worker, job_id: str, past_ms: int = 0) -> None:
    """Stop the worker until its lease on ``job_id`` (and the server time ``past_ms``) has
    passed, let another worker's fetch find it expired, then resume the worker."""
    q = QueueKeys.of(Q)
    w.proc.send_signal(signal.SIGSTOP)
    try:
        deadline = r.zscore(q.active, job_id)
        assert deadline is not None, "the job is not leased"
        wait_until(lambda: server_ms(r) > max(deadline, past_ms) + 50, 30, "the lease to expire")
        keys, args = fetch_args("another-worker", 0, 2000, 0, defaults.WORKER_TTL_MS, [q])
        run_pipeline(r, [(LUA["fetch"], keys, args)])
    finally:
        w.proc.send_signal(signal.SIGCONT)


def spans(r: redis.Redis, tag: str) -> list[bytes]:
    return list(r.lrange(f"test:span:{tag}", 0, -1))


def test_the_run_keeps_its_token_and_stores_its_progress_after_a_late_heartbeat(
    app: kubeq.App, r: redis.Redis, worker: Worker
) -> None:
    job = send(app, leasetasks.progress_when_told.s("p"))
    wait_until(lambda: r.llen("test:runs:p") == 1, 30, "the job to start")
    late_heartbeat(r, worker, job.id)
    wait_until(lambda: job.status() == "active", 30, "the worker to hold the job again")
    r.set("test:go:p", 1)
    assert job.result(timeout=60) == "done p"
    assert job.progress() == 100
    assert r.llen("test:runs:p") == 1, "the job ran twice"


def test_a_late_heartbeat_keeps_the_concurrency_slot(
    app: kubeq.App, r: redis.Redis, worker: Worker
) -> None:
    first = send(app, leasetasks.one_at_a_time.s("c", "first"))
    wait_until(lambda: len(spans(r, "c")) == 1, 30, "the first job to start")
    second = send(app, leasetasks.one_at_a_time.s("c", "second").set(priority=9))
    wait_until(lambda: second.status() == "waiting", 30, "the second job to wait for the slot")
    late_heartbeat(r, worker, first.id)
    # the worker's fetches and heartbeats go on for a while before the first job may end
    time.sleep(2.0)
    r.set("test:go:c", 1)
    assert second.result(timeout=60) == "second"
    assert first.result(timeout=60) == "first"
    assert max_running(spans(r, "c")) == 1, f"two ran at once under a limit of 1: {spans(r, 'c')}"


def test_a_late_heartbeat_after_the_expiry_time_does_not_expire_a_started_job(
    app: kubeq.App, r: redis.Redis, worker: Worker
) -> None:
    job = send(app, leasetasks.progress_when_told.s("x").set(expires=3))
    wait_until(lambda: r.llen("test:runs:x") == 1, 30, "the job to start")
    expires_at = int(r.hget(QueueKeys.of(Q).job(job.id), "expires_at") or 0)
    assert expires_at > 0
    late_heartbeat(r, worker, job.id, past_ms=expires_at)
    wait_until(lambda: job.status() != "queued", 30, "a fetch or heartbeat to settle the lapse")
    assert job.status() == "active"  # not 'expired': it started in time
    r.set("test:go:x", 1)
    assert job.result(timeout=60) == "done x"  # not JobExpired: it started in time
    assert r.llen("test:runs:x") == 1


def test_abort_reaches_the_run_when_the_result_ttl_is_shorter_than_a_heartbeat(
    app: kubeq.App, r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    w = Worker(redis_url, tmp_path / "w.log", ["--concurrency", "4", "--lease", "8"])
    try:
        tags = [f"t{i}" for i in range(4)]
        jobs = [send(app, leasetasks.sleeps_async.s(t, 20.0).set(result_ttl=1)) for t in tags]
        for t in tags:
            wait_until(lambda t=t: r.llen(f"test:started:{t}") == 1, 30, f"{t} to start")
        # held between two heartbeats (every 2 s) for longer than the result TTL
        w.proc.send_signal(signal.SIGSTOP)
        try:
            for job in jobs:
                assert job.abort() is True
            time.sleep(2.0)
        finally:
            w.proc.send_signal(signal.SIGCONT)
        for t in tags:
            wait_until(
                lambda t=t: r.llen(f"test:cancelled:{t}") + r.llen(f"test:ended:{t}") > 0,
                40,
                f"{t} to be stopped or to end",
            )
        ran_on = [t for t in tags if r.llen(f"test:ended:{t}")]
        assert not ran_on, f"aborted jobs ran to their end: {ran_on}"
    finally:
        w.stop()


def test_an_aborted_thread_keeps_its_concurrency_slot_until_it_returns(
    app: kubeq.App, r: redis.Redis, worker: Worker
) -> None:
    first = send(app, leasetasks.one_that_never_checks.s("a", "first", 3.0))
    wait_until(lambda: len(spans(r, "a")) == 1, 30, "the first job to start")
    second = send(app, leasetasks.one_that_never_checks.s("a", "second", 0.1))
    wait_until(lambda: second.status() == "waiting", 30, "the second job to wait for the slot")
    assert first.abort() is True
    assert second.result(timeout=60) == "second"
    assert first.status() == "aborted"
    assert max_running(spans(r, "a")) == 1, f"two ran at once under a limit of 1: {spans(r, 'a')}"
