"""`kubeq` prints what jobs carry as text: Rich markup in an error is shown, never read, and
terminal control sequences in task data (a title change, a screen clear) are made visible
instead of reaching the terminal."""

from __future__ import annotations

import json
import time

import pytest
import qtasks

import kubeq
from tests.redis.workers import StartWorker, run

MARKUP = "[/red][bold]not markup[/bold]"
TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
BIDI = "\u202e"


@pytest.fixture
def hostile_dead_letter(app: kubeq.App, start_worker: StartWorker) -> kubeq.Job:
    """A job whose task name (unknown to the worker, so it is dead-lettered with a reason
    that names it) carries markup, an OSC title change, a screen clear and a bidi override."""
    start_worker()
    job = app.queue().enqueue_call(f"qtasks.nope{MARKUP}{TITLE}{CLEAR}{BIDI}", max_attempts=1)
    with pytest.raises(kubeq.JobFailed):
        job.result(timeout=30)
    return job


def no_control(out: str) -> None:
    for seq in ("\x1b", "\x07", BIDI):
        assert seq not in out, repr(out)


def test_dead_letter_list_shows_markup_and_control_codes_as_text(
    redis_url: str, hostile_dead_letter: kubeq.Job
) -> None:
    out = run(redis_url, "dlq", "list")
    assert out.returncode == 0, out.stderr
    assert hostile_dead_letter.id in out.stdout
    no_control(out.stdout)
    assert "[/red]" in out.stdout and "\\u001b]0;pwned\\u0007" in out.stdout


def test_job_and_dead_letter_details_neutralise_control_codes(
    redis_url: str, hostile_dead_letter: kubeq.Job
) -> None:
    for args in (("job", hostile_dead_letter.id), ("dlq", "show", hostile_dead_letter.id)):
        out = run(redis_url, *args)
        assert out.returncode == 0, out.stderr
        no_control(out.stdout)
        assert "\\u001b[2J" in out.stdout and "\\u202e" in out.stdout
        assert MARKUP in out.stdout  # plain lines keep the characters as they were


def test_a_failure_waited_for_is_one_safe_line(redis_url: str, start_worker: StartWorker) -> None:
    start_worker("--queue", "pq")  # qtasks.part_fail raises RuntimeError(f"part_fail {tag}")
    tag = json.dumps([f"{TITLE}{MARKUP}"])
    out = run(redis_url, "enqueue", "qtasks.part_fail", "-q", "pq#0", "--args", tag, "--wait", "30")
    assert out.returncode == 1, out.stderr
    no_control(out.stdout + out.stderr)
    assert "\\u001b]0;pwned\\u0007" in out.stdout and "[/red]" in out.stdout


def test_a_registered_name_that_is_no_queue_is_named_and_hides_nothing(
    redis_url: str, app: kubeq.App
) -> None:
    app.redis.sadd(f"{app.prefix}:queues", f"odd{TITLE}[/red]")
    app.queue("plain").enqueue_many([qtasks.add.s(1, 1)])
    for args in (("stats",), ("dlq", "list")):
        out = run(redis_url, *args)
        assert out.returncode == 0, out.stderr
        no_control(out.stdout + out.stderr)
        assert "'odd\\u001b]0;pwned\\u0007[/red]', which is not a queue name" in out.stderr
    assert "plain" in run(redis_url, "stats").stdout


def test_the_worker_log_neutralises_a_task_error(app: kubeq.App, start_worker: StartWorker) -> None:
    worker = start_worker("--queue", "pq")
    job = kubeq.App(app.redis_url).queue("pq#0").enqueue("qtasks.part_fail", f"{TITLE}{CLEAR}")
    with pytest.raises(kubeq.JobFailed):
        job.result(timeout=30)
    deadline = time.monotonic() + 30
    while "dead-lettered" not in worker.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = worker.log()
    assert "part_fail \\u001b]0;pwned\\u0007\\u001b[2J" in log, log
    no_control(log)
