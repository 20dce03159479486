"""``kubeq.chain`` with real worker processes: results flow link to link, across
queues; ``.si()`` links ignore them; a failed link stops the chain; cancelling mid-way means
nothing not yet started starts afterwards; bad chains are refused in the caller."""

from __future__ import annotations

import time

import pytest
import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker


def test_results_flow_along_the_chain_across_queues(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    start_worker("--queue", "default")
    start_worker("--queue", "second")
    flow = kubeq.chain(
        qtasks.add.s(1, 2),
        qtasks.add.s(10).set(queue="second"),
        qtasks.add.s(100),
    ).delay(app)
    assert flow.result(timeout=60) == 113
    assert flow.status() == "finished"
    assert [j.queue for j in flow.jobs] == ["default", "second", "default"]
    assert [j.result(timeout=1) for j in flow.jobs] == [3, 13, 113]
    assert flow.jobs[1].id == f"{flow.id}.s" and flow.jobs[2].id == f"{flow.id}.s.s"


def test_an_immutable_link_and_a_failing_link(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    start_worker()
    flow = kubeq.chain(qtasks.add.s(1, 2), qtasks.add.si(5, 5)).delay(app)
    assert flow.result(timeout=30) == 10
    links = (qtasks.always_fails.s("chainfail"), qtasks.record_args.s("never"))
    broken = kubeq.chain(*links).delay(app)
    with pytest.raises(kubeq.JobFailed):
        broken.result(timeout=30)
    assert broken.status() == "failed"
    time.sleep(0.5)
    assert r.llen("test:cb:never") == 0 and broken.jobs[1].status() == "unknown"


def test_cancel_mid_way_starts_nothing_more(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    start_worker()
    flow = kubeq.chain(
        qtasks.gate.s("cc"), qtasks.record_args.s("cc-2"), qtasks.record_args.s("cc-3")
    ).delay(app)
    wait_until(lambda: r.llen("test:started:cc"), what="the first link to start")
    assert flow.cancel() == 2  # the two links not enqueued yet: tombstones
    r.set("test:go:cc", 1)
    assert flow.jobs[0].result(timeout=30) == "cc"  # a running link finishes
    wait_until(
        lambda: r.zcard(QueueKeys.of("default").handoff) == 0, what="the hand-off to be done"
    )
    time.sleep(0.5)
    assert r.llen("test:cb:cc-2") == 0 and r.llen("test:cb:cc-3") == 0
    assert [j.status() for j in flow.jobs] == ["finished", "cancelled", "cancelled"]
    with pytest.raises(kubeq.JobCancelled):
        flow.result(timeout=5)


def test_cancel_before_anything_ran(app: kubeq.App, r: redis.Redis) -> None:
    flow = kubeq.chain(qtasks.record_args.s("pre-1"), qtasks.record_args.s("pre-2")).delay(app)
    assert flow.cancel() == 2
    assert [j.status() for j in flow.jobs] == ["cancelled", "cancelled"]
    assert app.queue().stats().backlog == 0


def test_bad_chains_are_refused(app: kubeq.App) -> None:
    with pytest.raises(ValueError, match="at least one signature"):
        kubeq.chain()
    with pytest.raises(TypeError, match="chain link 1 must be a task signature"):
        kubeq.chain(qtasks.add.s(1, 2), qtasks.add)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already has on_success"):
        kubeq.chain(qtasks.add.s(1, 2).set(on_success=qtasks.add.s(1)), qtasks.add.s(2))
    assert app.queue().stats().backlog == 0
