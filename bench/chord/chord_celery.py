"""Celery's side of the chord benchmark: the same two tasks, Celery's chord on the
same Redis as broker and result backend (a chord needs one: Celery counts finished members
in it). Runs in the Celery peer venv (bench.mk). See run_chord.py."""

from __future__ import annotations

import chord_common as common
from celery import Celery, chord

app = Celery("chord_celery", broker=common.url(), backend=common.url())
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)

WORKER = [
    "celery",
    "-A",
    "chord_celery",
    "worker",
    "--pool",
    "threads",
    "--concurrency",
    "16",
    "--loglevel",
    "WARNING",
]
"""One worker process, 16 threads, like kubeq's (Celery's own defaults otherwise)."""
HOW = "chord(member.s(i) ...)(done.s()) with the Redis result backend; worker -P threads -c 16"


@app.task(name="chord.member")
def member(i: int) -> int:
    common.record_start()
    return i


@app.task(name="chord.done")
def done(results: list[int]) -> int:
    common.record_done(results)
    return len(results)


def start(n: int) -> None:
    chord(member.s(i) for i in range(n))(done.s())


def close() -> None:
    app.close()
