"""`kubeq` output for scripts and pipes: -o json, bare ids, and job ids never cut."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.workers import StartWorker

KUBEQ = str(Path(sys.executable).with_name("kubeq"))


def run(redis_url: str, *args: str, columns: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["KUBEQ_REDIS_URL"] = redis_url
    if columns is not None:
        env["COLUMNS"] = columns
    return subprocess.run(
        [KUBEQ, *args], check=False, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def dead_jobs(app: kubeq.App, start_worker: StartWorker) -> list[kubeq.Job]:
    start_worker()
    jobs = [app.queue().enqueue_call(qtasks.always_fail, max_attempts=1) for _ in range(2)]
    for job in jobs:
        with pytest.raises(kubeq.JobFailed):
            job.result(timeout=30)
    return jobs


def test_stats_as_json(redis_url: str, app: kubeq.App) -> None:
    app.queue("jsonq").enqueue_many([qtasks.add.s(1, 1)] * 3)
    out = run(redis_url, "stats", "-o", "json", "--queue", "jsonq")
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert row["queue"] == "jsonq" and row["backlog"] == 3 and row["paused"] is False


def test_job_and_dead_letters_as_json(redis_url: str, dead_jobs: list[kubeq.Job]) -> None:
    listing = json.loads(run(redis_url, "dlq", "list", "-o", "json").stdout)
    assert {d["id"] for d in listing} == {j.id for j in dead_jobs}
    assert all(d["status"] == "failed" and d["task"] == "qtasks.always_fail" for d in listing)
    shown = json.loads(run(redis_url, "dlq", "show", dead_jobs[0].id, "-o", "json").stdout)
    assert shown["reason"].startswith("failed 1 of 1 attempts")
    assert "ValueError: this task always fails" in shown["traceback"]
    one = json.loads(run(redis_url, "job", dead_jobs[1].id, "-o", "json").stdout)
    assert (one["id"], one["status"], one["attempts"]) == (dead_jobs[1].id, "failed", 1)


def test_dead_letters_of_a_queue_by_argument_or_option(
    redis_url: str, dead_jobs: list[kubeq.Job]
) -> None:
    by_arg = run(redis_url, "dlq", "list", "default", "-o", "name").stdout.split()
    by_opt = run(redis_url, "dlq", "list", "--queue", "default", "-o", "name").stdout.split()
    assert sorted(by_arg) == sorted(by_opt) == sorted(j.id for j in dead_jobs)
    assert run(redis_url, "dlq", "list", "other", "-o", "name").stdout == ""
    clash = run(redis_url, "dlq", "list", "default", "--queue", "other")
    assert clash.returncode == 2 and "two different queues" in clash.stderr


@pytest.mark.parametrize("columns", [None, "40"])
def test_piped_or_narrow_tables_never_cut_a_job_id(
    redis_url: str, dead_jobs: list[kubeq.Job], columns: str | None
) -> None:
    out = run(redis_url, "dlq", "list", columns=columns)
    assert out.returncode == 0, out.stderr
    for job in dead_jobs:
        assert job.id in out.stdout, out.stdout


def test_markup_in_user_input_is_printed_as_text(redis_url: str) -> None:
    out = run(redis_url, "enqueue", "qtasks.add", "--job-id", "[/red]")
    assert out.returncode == 1, out.stderr
    assert "invalid job_id '[/red]'" in out.stdout and "Traceback" not in out.stderr


def test_a_redis_that_never_answers_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        out = run(f"redis://127.0.0.1:{port}/0", "stats", "--queue", "x")
    assert out.returncode == 1
    assert f"Redis at redis://127.0.0.1:{port}/0 accepted the connection but did not answer" in (
        out.stdout
    )
    assert "Traceback" not in out.stderr


def test_one_malformed_dead_letter_does_not_hide_the_others(
    redis_url: str, dead_jobs: list[kubeq.Job], r: redis.Redis
) -> None:
    keys = QueueKeys.of("default")
    r.hset(keys.job(dead_jobs[0].id), "attempts", "lots")
    r.zadd(keys.dead, {"garbage-key": 1})
    r.set(keys.job("garbage-key"), "a string")
    out = run(redis_url, "dlq", "list", "-o", "json")
    assert out.returncode == 0, out.stderr
    listed = {d["id"]: d for d in json.loads(out.stdout)}
    assert set(listed) == {dead_jobs[0].id, dead_jobs[1].id, "garbage-key"}
    assert "unreadable job data" in listed["garbage-key"]["reason"]
