"""kubeq's side of the chord benchmark: the tasks its worker imports and how a
chord of N is started. See run_chord.py."""

from __future__ import annotations

import chord_common as common

import kubeq

app = kubeq.App(common.url())

WORKER = ["kubeq", "worker", "chord_kubeq", "--concurrency", "16"]
"""One worker process, 16 threads (run from the project venv's bin)."""
HOW = "kubeq.chord([member.s(i) ...], done.s()).delay(); kubeq worker --concurrency 16"


@app.task
def member(i: int) -> int:
    common.record_start()
    return i


@app.task
def done(results: list[int]) -> int:
    common.record_done(results)
    return len(results)


def start(n: int) -> None:
    kubeq.chord([member.s(i) for i in range(n)], done.s()).delay(app)


def close() -> None:
    app.close()
