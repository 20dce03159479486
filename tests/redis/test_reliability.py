"""The job guarantees, proven with real worker processes and real signals.

SIGKILL mid-job, a paused (zombie) worker coming back, SIGTERM drains, Redis going away,
retries, dead letters, and payloads that must never run.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request

import pytest
import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker
from tests.support.redisserver import RedisServer, free_port


def _started(r: redis.Redis, tag: str) -> list[int]:
    return [int(p) for p in r.lrange(f"test:started:{tag}", 0, -1)]


def _ended(r: redis.Redis, tag: str) -> list[int]:
    return [int(p) for p in r.lrange(f"test:ended:{tag}", 0, -1)]


# -- retries and dead letters -----


def test_transient_failures_retry_with_backoff_then_succeed(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    start_worker()
    job = app.queue().enqueue(qtasks.fail_until, "t1", 2)
    assert job.result(timeout=30) == 3
    assert job.info().attempts == 3


@pytest.mark.also_redis_cluster
def test_last_failure_goes_to_dead_letters_with_reason_and_traceback(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    start_worker()
    job = app.queue().enqueue(qtasks.always_fail)
    with pytest.raises(kubeq.JobFailed) as failed:
        job.result(timeout=30)
    assert "failed 2 of 2 attempts" in failed.value.reason
    assert "ValueError: this task always fails" in failed.value.error
    assert "raise ValueError" in failed.value.traceback
    dead = app.queue().dead_letters()
    assert [d.id for d in dead] == [job.id]
    assert app.queue().stats().dead == 1


@pytest.mark.also_redis_cluster
def test_dead_letters_can_be_requeued_and_purged(app: kubeq.App, start_worker: StartWorker) -> None:
    start_worker()
    q = app.queue()
    jobs = [q.enqueue(qtasks.always_fail) for _ in range(3)]
    for job in jobs:
        with pytest.raises(kubeq.JobFailed):
            job.result(timeout=30)
    assert q.requeue_dead([jobs[0].id]) == 1
    with pytest.raises(kubeq.JobFailed):
        jobs[0].result(timeout=30)  # it ran again (two more attempts) and died again
    assert jobs[0].info().attempts == 2
    assert q.purge_dead() == 3
    assert q.stats().dead == 0 and jobs[1].status() == "unknown"


def test_exception_not_in_retry_on_is_not_retried(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    start_worker()
    job = app.queue().enqueue(qtasks.not_retried)
    with pytest.raises(kubeq.JobFailed, match="KeyError is not retried"):
        job.result(timeout=30)
    assert job.info().attempts == 1


def test_raise_retry_from_a_task(app: kubeq.App, start_worker: StartWorker) -> None:
    start_worker()
    assert app.queue().enqueue(qtasks.explicit_retry, "r1").result(timeout=30) == 2


def test_per_call_retry_options_override_the_task(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    start_worker()
    job = app.queue().enqueue_call(qtasks.always_fail, max_attempts=1)
    with pytest.raises(kubeq.JobFailed, match="failed 1 of 1 attempts"):
        job.result(timeout=30)


def test_timeout_fails_the_attempt(app: kubeq.App, start_worker: StartWorker) -> None:
    start_worker()
    with pytest.raises(kubeq.JobFailed, match=r"timeout of 0\.3 s"):
        app.queue().enqueue(qtasks.too_slow).result(timeout=30)


def test_unserializable_result_is_a_clear_failure(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    start_worker()
    job = app.queue().enqueue_call(qtasks.returns_a_set, max_attempts=1)
    with pytest.raises(kubeq.JobFailed, match="returned a set, which is not JSON-serializable"):
        job.result(timeout=30)


def test_async_and_process_pool_tasks(app: kubeq.App, start_worker: StartWorker) -> None:
    worker = start_worker("--concurrency", "2")
    q = app.queue()
    assert q.enqueue(qtasks.async_add, 20, 22).result(timeout=30) == 42
    assert q.enqueue(qtasks.worker_pid).result(timeout=30) == worker.pid
    child = q.enqueue(qtasks.cpu_pid).result(timeout=60)
    assert child != worker.pid  # pool="process": ran in a child process


# -- bad input -----


def test_malformed_payload_is_dead_lettered_and_worker_goes_on(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    start_worker()
    keys = QueueKeys.of("default")
    r.hset(
        keys.job("junk"),
        mapping={
            "payload": "{not json",
            "status": "queued",
            "priority": 5,
            "lease": 0,
            "deliveries": 0,
            "attempts": 0,
            "max_deliveries": 5,
            "result_ttl": 60,
            "enqueued_at": 0,
        },
    )
    r.zadd(keys.ready, {"junk": 1})
    junk = app.job("junk")
    with pytest.raises(kubeq.JobFailed, match="malformed payload: not valid JSON"):
        junk.result(timeout=30)
    assert app.queue().enqueue(qtasks.add, 1, 1).result(timeout=30) == 2


def test_unknown_task_never_runs_and_is_dead_lettered(
    app: kubeq.App, start_worker: StartWorker, tmp_path: os.PathLike[str]
) -> None:
    worker = start_worker()
    marker = os.path.join(tmp_path, "pwned")
    q = app.queue()
    attempts = [
        q.enqueue("os.system", f"touch {marker}"),
        q.enqueue("subprocess.call", ["touch", marker]),
        q.enqueue("builtins.exec", f"open({marker!r}, 'w')"),
    ]
    for job in attempts:
        with pytest.raises(kubeq.JobFailed, match="unknown task") as failed:
            job.result(timeout=30)
        assert "registered by module 'qtasks'" in failed.value.reason
    assert not os.path.exists(marker)
    assert worker.proc.poll() is None
    assert q.enqueue(qtasks.add, 2, 2).result(timeout=30) == 4


# -- crashes, zombies and drains -----


@pytest.mark.also_redis_cluster
def test_sigkill_mid_job_runs_it_again_after_the_lease(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    first = start_worker("--lease", "2")
    job = app.queue().enqueue(qtasks.run_and_record, "kill", 1.0)
    wait_until(lambda: _started(r, "kill"), what="the job to start")
    first.signal(signal.SIGKILL)
    first.wait()
    second = start_worker("--lease", "2")
    assert job.result(timeout=60) == second.pid
    assert _started(r, "kill") == [first.pid, second.pid]
    assert _ended(r, "kill") == [second.pid]
    info = job.info()
    assert info.status == "finished" and info.deliveries == 2 and info.attempts == 1


@pytest.mark.also_redis_cluster
def test_late_completion_of_a_zombie_cannot_overwrite_the_new_owner(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    zombie = start_worker("--lease", "1")
    job = app.queue().enqueue(qtasks.run_and_record, "zombie", 1.5)
    wait_until(lambda: _started(r, "zombie"), what="the job to start")
    zombie.signal(signal.SIGSTOP)  # frozen: no heartbeat, the lease expires
    rescuer = start_worker("--lease", "1")
    assert job.result(timeout=60) == rescuer.pid
    zombie.signal(signal.SIGCONT)  # the zombie wakes, finishes its run and tries to ack
    wait_until(lambda: zombie.pid in _ended(r, "zombie"), what="the zombie's run to end")
    wait_until(
        lambda: "outcome refused" in zombie.log() or "lease lost" in zombie.log(),
        what="the zombie to notice",
    )
    time.sleep(0.5)
    info = job.info()
    assert info.status == "finished" and info.result == str(rescuer.pid)
    assert job.result(timeout=1) == rescuer.pid


@pytest.mark.also_redis_cluster
def test_sigterm_finishes_running_jobs_and_leaves_the_rest(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    worker = start_worker("--concurrency", "1")
    jobs = [app.queue().enqueue(qtasks.run_and_record, "drain", 1.0) for _ in range(3)]
    wait_until(lambda: _started(r, "drain"), what="the first job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert jobs[0].result(timeout=1) == worker.pid  # finished within the drain
    assert [j.status() for j in jobs[1:]] == ["queued", "queued"]
    assert all(j.info().attempts == 0 for j in jobs[1:])
    stats = app.queue().stats()
    assert (stats.backlog, stats.in_flight, stats.dead) == (2, 0, 0)


@pytest.mark.also_redis_cluster
def test_sigterm_hands_back_what_cannot_finish_within_the_drain_timeout(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    worker = start_worker("--drain-timeout", "0.5")
    job = app.queue().enqueue(qtasks.run_and_record, "handback", 5.0)
    wait_until(lambda: _started(r, "handback"), what="the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    info = job.info()
    assert (info.status, info.attempts, info.deliveries) == ("queued", 0, 0)
    assert "handing back 1 unfinished jobs" in worker.log()
    successor = start_worker()
    assert job.result(timeout=60) == successor.pid


@pytest.mark.also_redis_cluster
def test_second_signal_hands_back_at_once(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    worker = start_worker("--drain-timeout", "600")
    job = app.queue().enqueue(qtasks.run_and_record, "twice", 30.0)
    wait_until(lambda: _started(r, "twice"), what="the job to start")
    worker.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert worker.proc.poll() is None  # draining, within a 600 s drain timeout
    worker.signal(signal.SIGINT)
    assert worker.wait(30) == 0
    assert job.status() == "queued"


@pytest.mark.also_redis_cluster
def test_poison_job_that_kills_its_worker_is_dead_lettered(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    job = app.queue().enqueue(qtasks.kill_my_worker)  # max_deliveries=2
    dead_workers = 0
    for _ in range(4):  # a crash loop, as a Deployment would restart the pod
        w = start_worker("--lease", "1")
        wait_until(
            lambda w=w: w.proc.poll() is not None or job.status() == "failed",  # type: ignore[misc]
            timeout=60,
            what="the worker to die or the job to be dead-lettered",
        )
        if job.status() == "failed":
            break
        dead_workers += 1
    assert dead_workers == 2  # each delivery killed one worker, then it was stopped
    with pytest.raises(kubeq.JobFailed, match="delivered 2 times without an acknowledgement"):
        job.result(timeout=1)
    assert w.proc.poll() is None  # the worker that found it dead-lettered it and lives on
    assert app.queue().enqueue(qtasks.add, 3, 3).result(timeout=30) == 6


# -- Redis outages and health -----


def test_worker_survives_a_redis_restart(
    tmp_path: os.PathLike[str], start_worker: StartWorker
) -> None:
    server = RedisServer(__import__("pathlib").Path(tmp_path) / "r2", port=free_port())
    server.start()
    try:
        from tests.redis.workers import WorkerProcess

        w = WorkerProcess(
            server.url,
            __import__("pathlib").Path(tmp_path) / "w.log",
            ["--metrics-port", str(free_port()), "--stall-seconds", "2"],
        )
        try:
            app = kubeq.App(server.url)
            assert app.queue().enqueue(qtasks.add, 1, 1).result(timeout=30) == 2
            server.stop()
            wait_until(lambda: "Redis unreachable" in w.log(), what="the outage to be logged")
            time.sleep(1.0)
            server.start()
            assert app.queue().enqueue(qtasks.add, 2, 2).result(timeout=60) == 4
            assert "Redis is reachable again" in w.log()
            assert w.proc.poll() is None
        finally:
            w.stop()
    finally:
        server.stop()


def test_healthz_fails_when_the_worker_cannot_consume(
    tmp_path: os.PathLike[str],
) -> None:
    from pathlib import Path

    from tests.redis.workers import WorkerProcess

    server = RedisServer(Path(tmp_path) / "r3", port=free_port())
    server.start()
    port = free_port()
    w = WorkerProcess(
        server.url, Path(tmp_path) / "w.log", ["--metrics-port", str(port), "--stall-seconds", "2"]
    )
    try:
        app = kubeq.App(server.url)
        assert app.queue().enqueue(qtasks.add, 1, 1).result(timeout=30) == 2

        def get(path: str) -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                    return resp.status, resp.read().decode()
            except urllib.error.HTTPError as err:
                return err.code, err.read().decode()

        wait_until(lambda: get("/healthz")[0] == 200, what="healthz 200")
        status, metrics = get("/metrics")
        assert status == 200
        assert (
            'kubeq_jobs_total{outcome="finished",queue="default",task="qtasks.add"} 1.0' in metrics
        )
        for name in (
            "kubeq_job_duration_seconds",
            "kubeq_job_wait_seconds",
            "kubeq_jobs_in_progress",
        ):
            assert name in metrics
        # the job's run and its wait were observed, not only the families declared
        assert 'kubeq_job_duration_seconds_count{queue="default",task="qtasks.add"} 1.0' in metrics
        assert 'kubeq_job_wait_seconds_count{queue="default"} 1.0' in metrics
        server.stop()
        wait_until(lambda: get("/healthz")[0] == 503, timeout=30, what="healthz 503")
        assert "Redis" in get("/healthz")[1]
        server.start()
        wait_until(lambda: get("/healthz")[0] == 200, timeout=30, what="healthz back to 200")
    finally:
        w.stop()
        server.stop()
