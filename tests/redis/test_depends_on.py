"""``depends_on=`` with real worker processes: a child waits ``deferred`` (not
backlog) until its last parent, on any queue, finishes, and runs once; a failed parent
cancels it unless ``allow_failure``; two parents ending at the same instant release each child
exactly once; bad input is refused with nothing enqueued."""

from __future__ import annotations

import json
import time

import pytest
import qtasks
import redis

import kubeq
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker


def _ran(r: redis.Redis, tag: str) -> list[object]:
    return [json.loads(v) for v in r.lrange(f"test:cb:{tag}", 0, -1)]


def test_a_child_waits_for_its_last_parent_across_queues(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    start_worker("--queue", "default", "--queue", "other", "--queue", "kids")
    p1 = app.queue().enqueue(qtasks.gate, "dep1")
    p2 = app.queue("other").enqueue(qtasks.gate, "dep2")
    child = app.queue("kids").enqueue_call(qtasks.record_args, ("child",), depends_on=[p1, p2])
    assert child.status() == "deferred"
    kids = app.queue("kids").stats()
    assert (kids.backlog, kids.deferred) == (0, 1)  # blocked work is not backlog
    wait_until(lambda: r.llen("test:started:dep1") and r.llen("test:started:dep2"))
    r.set("test:go:dep1", 1)
    assert p1.result(timeout=30) == "dep1"
    time.sleep(0.5)
    assert child.status() == "deferred" and _ran(r, "child") == []
    r.set("test:go:dep2", 1)
    assert child.result(timeout=30) is None
    assert _ran(r, "child") == [["child"]]
    assert app.queue("kids").stats().deferred == 0


def test_a_failed_parent_cancels_the_child_unless_allow_failure(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    start_worker()
    parent = app.queue().enqueue(qtasks.always_fails, "depfail")
    strict = app.queue().enqueue_call(qtasks.record_args, ("strict",), depends_on=[parent])
    lenient = app.queue().enqueue_call(
        qtasks.record_args, ("lenient",), depends_on=[parent], allow_failure=True
    )
    with pytest.raises(kubeq.JobCancelled):
        strict.result(timeout=30)
    assert "ended failed" in strict.info().reason
    assert lenient.result(timeout=30) is None
    assert _ran(r, "strict") == [] and _ran(r, "lenient") == [["lenient"]]


def test_a_parent_that_already_finished(app: kubeq.App, start_worker: StartWorker) -> None:
    start_worker()
    parent = app.queue().enqueue(qtasks.add, 1, 2)
    assert parent.result(timeout=30) == 3
    child = app.queue().enqueue_call(qtasks.add, (2, 2), depends_on=[parent.id])
    assert child.result(timeout=30) == 4


def test_two_parents_ending_together_release_each_child_once(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    for _ in range(2):
        start_worker("--concurrency", "8")
    p1 = app.queue().enqueue(qtasks.gate, "together")
    p2 = app.queue().enqueue(qtasks.gate, "together")
    children = app.enqueue_many(
        qtasks.record_args.s(f"kid{i}").set(depends_on=[p1, p2]) for i in range(100)
    )
    wait_until(lambda: r.llen("test:started:together") == 2, what="both parents to run")
    r.set("test:go:together", 1)  # both parents end at the same instant
    for child in children:
        assert child.result(timeout=60) is None
    time.sleep(1)
    assert all(_ran(r, f"kid{i}") == [[f"kid{i}"]] for i in range(100))


def test_bad_dependencies_are_refused_with_nothing_enqueued(app: kubeq.App) -> None:
    q = app.queue()
    with pytest.raises(kubeq.JobNotFound, match="nope"):
        q.enqueue_call(qtasks.add, (1, 2), depends_on=["nope"])
    parent = q.enqueue(qtasks.add, 1, 2)
    with pytest.raises(ValueError, match="cannot depend on itself"):
        q.enqueue_call(qtasks.add, (1, 2), depends_on=["me"], job_id="me")
    other = q.enqueue(qtasks.add, 3, 4)
    with pytest.raises(ValueError, match="must be new"):
        q.enqueue_call(qtasks.add, (1, 2), depends_on=[parent], job_id=other.id)
    with pytest.raises(TypeError, match="depends_on takes Job handles"):
        q.enqueue_call(qtasks.add, (1, 2), depends_on=[42])
    assert q.stats().backlog == 2  # the parent and the other job only


@pytest.mark.parametrize("form", ["handle twice", "handle and id", "deduplicated enqueues"])
def test_a_parent_named_twice_is_waited_for_once(
    form: str, app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """``[a, a]``, ``[a, a.id]`` and two handles from enqueues deduplicated by ``job_id`` name
    one parent: the child waits for it once, and runs when it finishes."""
    q = app.queue()
    a = q.enqueue_call(qtasks.add, (1, 2), job_id="the-parent")
    if form == "handle twice":
        parents: list[object] = [a, a]
    elif form == "handle and id":
        parents = [a, a.id]
    else:
        parents = [a, q.enqueue_call(qtasks.add, (1, 2), job_id="the-parent")]
    child = q.enqueue_call(qtasks.record_args, ("twice",), depends_on=parents)
    assert child.status() == "deferred"
    assert r.hget(f"kubeq:{{default}}:job:{child.id}", "pending") == b"1"
    start_worker()
    assert a.result(timeout=30) == 3
    assert child.result(timeout=30) is None
    assert _ran(r, "twice") == [["twice"]]


def test_a_parent_named_twice_that_already_finished(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    start_worker()
    a = app.queue().enqueue(qtasks.add, 1, 2)
    assert a.result(timeout=30) == 3
    child = app.queue().enqueue_call(qtasks.add, (3, 4), depends_on=[a, a.id, a])
    assert child.result(timeout=30) == 7
