"""The `kubeq` command against a real Redis, as an operator of the system would use it."""

from __future__ import annotations

from pathlib import Path

import pytest
import qtasks

import kubeq
from tests.redis.workers import StartWorker, run


def test_enqueue_and_wait_for_the_result(redis_url: str, start_worker: StartWorker) -> None:
    start_worker()
    out = run(redis_url, "enqueue", "qtasks.add", "--args", "[20, 22]", "--wait", "30")
    assert out.returncode == 0, out.stderr
    job_id, result = out.stdout.split()
    assert result == "42" and len(job_id) > 10


def test_enqueue_rejects_bad_json_naming_the_option(redis_url: str) -> None:
    out = run(redis_url, "enqueue", "qtasks.add", "--args", "{not json")
    assert out.returncode == 2
    assert "--args" in out.stderr and "not valid JSON" in out.stderr
    out = run(redis_url, "enqueue", "qtasks.add", "--kwargs", "[1]")
    assert out.returncode == 2 and "must be a JSON dict" in out.stderr


def test_stats_pause_resume_purge(redis_url: str, app: kubeq.App) -> None:
    q = app.queue("cliq")
    q.enqueue_many([qtasks.add.s(1, 1)] * 7)
    out = run(redis_url, "stats")
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if "cliq" in x)
    assert line.split("│")[2].strip() == "7"  # backlog column
    assert run(redis_url, "pause", "cliq").returncode == 0
    assert q.is_paused()
    assert "(paused)" in run(redis_url, "stats", "--queue", "cliq").stdout
    assert run(redis_url, "resume", "cliq").returncode == 0
    assert not q.is_paused()
    out = run(redis_url, "purge", "cliq", "--yes")
    assert "purged 7 jobs" in out.stdout
    assert q.stats().backlog == 0


def test_dead_letter_commands(redis_url: str, app: kubeq.App, start_worker: StartWorker) -> None:
    start_worker()
    jobs = [app.queue().enqueue_call(qtasks.always_fail, max_attempts=1) for _ in range(2)]
    for job in jobs:
        with pytest.raises(kubeq.JobFailed):
            job.result(timeout=30)
    listing = run(redis_url, "dlq", "list")
    assert listing.returncode == 0, listing.stderr
    assert jobs[0].id in listing.stdout and "qtasks.always_fail" in listing.stdout
    shown = run(redis_url, "dlq", "show", jobs[0].id)
    assert "ValueError: this task always fails" in shown.stdout
    assert "traceback:" in shown.stdout and "failed 1 of 1 attempts" in shown.stdout
    assert run(redis_url, "dlq", "requeue").returncode == 2  # ids or --all required
    assert "re-queued 1 dead letters" in run(redis_url, "dlq", "requeue", jobs[0].id).stdout
    with pytest.raises(kubeq.JobFailed):
        jobs[0].result(timeout=30)  # it ran again and failed again
    assert "purged 2 dead letters" in run(redis_url, "dlq", "purge", "--all").stdout
    assert "no dead letters" in run(redis_url, "dlq", "list").stdout


def test_unreachable_redis_is_one_clear_line(tmp_path: Path) -> None:
    out = run("redis://:s3cret@127.0.0.1:1/0", "stats", "--queue", "x")
    assert out.returncode == 1
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in out.stdout
    assert "s3cret" not in out.stdout + out.stderr


def test_worker_refuses_a_module_without_tasks(redis_url: str) -> None:
    out = run(redis_url, "worker", "json")
    assert out.returncode == 2
    assert "registers no tasks" in out.stderr


def test_unreachable_redis_given_by_option_names_that_url(tmp_path: Path) -> None:
    out = run(
        "redis://127.0.0.1:2/0",
        "--redis-url",
        "redis://127.0.0.1:1/0?password=pw9",
        "stats",
        "--queue",
        "x",
    )
    assert out.returncode == 1
    assert "cannot reach Redis at redis://127.0.0.1:1/0?password=***" in out.stdout
    assert "pw9" not in out.stdout + out.stderr


def test_bad_queue_name_is_one_line_not_a_traceback(redis_url: str) -> None:
    out = run(redis_url, "pause", "bad{name}")
    assert out.returncode == 1
    assert "invalid queue name 'bad{name}'" in out.stdout and "Traceback" not in out.stderr
