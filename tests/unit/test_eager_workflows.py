"""Eager mode (kubeq.testing.eager) keeps the rules of ``depends_on`` and chords: a child
whose parent failed is cancelled and never runs (unless ``allow_failure``), a parent that was
never run in the block is refused as the real client refuses an unknown one, and a chord's
callback gets its members' results.

No Redis here: the App points at a port nobody listens on, so any network use would fail.
"""

from __future__ import annotations

import pytest

import kubeq
from kubeq.testing import eager
from tests.support.redisserver import free_port

app = kubeq.App(f"redis://127.0.0.1:{free_port()}/0")
ran: list[str] = []


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(max_attempts=1)
def fails() -> None:
    raise ValueError("on purpose")


@app.task
def note(tag: str) -> str:
    ran.append(tag)
    return tag


@app.task
def total(results: list[int]) -> int:
    return sum(results)


def test_a_child_of_a_failed_parent_is_cancelled_unless_allow_failure() -> None:
    ran.clear()
    with eager(app):
        parent = fails.delay()
        strict, lenient = app.enqueue_many(
            [
                note.s("strict").set(depends_on=[parent]),
                note.s("lenient").set(depends_on=[parent], allow_failure=True),
            ]
        )
    assert parent.status() == "failed"
    assert strict.status() == "cancelled"
    with pytest.raises(kubeq.JobCancelled, match="ended failed"):
        strict.result()
    assert lenient.result() == "lenient"
    assert ran == ["lenient"]


def test_a_parent_that_does_not_exist_is_refused_with_nothing_run() -> None:
    ran.clear()
    with eager(app):
        with pytest.raises(kubeq.JobNotFound, match="nope"):
            app.enqueue_many([note.s("first"), note.s("orphan").set(depends_on=["nope"])])
        parent = add.delay(1, 2)
        (child,) = app.enqueue_many([note.s("child").set(depends_on=[parent])])
        assert child.result() == "child"
    assert ran == ["child"]


def test_a_chord_callback_gets_its_members_results() -> None:
    with eager(app):
        c = kubeq.chord([add.s(i, i) for i in range(4)], total.s()).delay(app)
    assert c.result() == 12
