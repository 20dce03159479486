"""Jobs pinned to a worker version, against a real Redis and real worker processes of two
versions (``KUBEQ_VERSION``): a pinned job runs only on its version's worker while the other
version's worker idles; its retries and a pinned child enqueued by a job stay there; a worker
of a retired version still runs the jobs pinned to it; a pinned call from a process with no
version is refused."""

from __future__ import annotations

import time
import uuid

import pytest
import qtasks
import redis

import kubeq
from kubeq.client.pinning import NoWorkerVersion
from kubeq.store.keys import QueueKeys
from kubeq.workflows.callbacks import callback_id
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker, WorkerProcess


def two_versions(
    start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch, q: str
) -> tuple[WorkerProcess, WorkerProcess]:
    monkeypatch.setenv("KUBEQ_VERSION", "v1")
    v1 = start_worker("--queue", q, "--concurrency", "4")
    monkeypatch.setenv("KUBEQ_VERSION", "v2")
    v2 = start_worker("--queue", q, "--concurrency", "4")
    return v1, v2


@pytest.mark.also_redis_cluster
def test_a_pinned_job_runs_only_on_its_version(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = f"pin-{uuid.uuid4().hex[:6]}"
    v1, v2 = two_versions(start_worker, monkeypatch, q)
    monkeypatch.setenv("KUBEQ_VERSION", "v1")  # this process enqueues as version v1
    pinned = app.enqueue_many([qtasks.pinned_where.s().set(queue=q) for _ in range(20)])
    named = app.enqueue_many([qtasks.where.s().set(queue=q, version="v2") for _ in range(5)])
    unpinned = app.enqueue_many([qtasks.pinned_where.s().set(queue=q, pin_version=False)])
    assert {j.queue for j in pinned} == {f"{q}~v1"}
    assert {j.queue for j in named} == {f"{q}~v2"}
    assert unpinned[0].queue == q
    assert {tuple(j.result(timeout=60)) for j in pinned} == {("v1", str(v1.pid))}
    assert {tuple(j.result(timeout=60)) for j in named} == {("v2", str(v2.pid))}
    assert unpinned[0].result(timeout=60)[0] in ("v1", "v2")
    assert app.job(pinned[0].id, pinned[0].queue).info().pinned_version == "v1"


def test_retries_and_children_stay_pinned(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    q, tag = f"pin-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    v1, _v2 = two_versions(start_worker, monkeypatch, q)
    monkeypatch.setenv("KUBEQ_VERSION", "v1")
    flaky = app.enqueue_many([qtasks.pinned_flaky.s(tag, 2).set(queue=q)])[0]
    assert flaky.result(timeout=60) == ["v1", str(v1.pid)]
    runs = [x.decode() for x in r.lrange(f"test:pinned:{tag}", 0, -1)]
    assert runs == [f"v1:{v1.pid}"] * 3  # every attempt on v1, none on v2

    monkeypatch.setenv("KUBEQ_VERSION", "v2")  # the parent is enqueued by a v2 process, unpinned
    parent = app.enqueue_many([qtasks.spawn_pinned.s(q).set(queue=q) for _ in range(6)])
    for job in parent:
        child_queue, child_id = job.result(timeout=60)
        ran_on = job.info().worker
        version = "v1" if str(v1.pid) in ran_on else "v2"
        assert child_queue == f"{q}~{version}"  # the version its parent ran on
        assert app.job(child_id, child_queue).result(timeout=60)[0] == version


def test_a_retired_version_still_runs_the_jobs_pinned_to_it(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = f"pin-{uuid.uuid4().hex[:6]}"
    v1, v2 = two_versions(start_worker, monkeypatch, q)
    r.hset(QueueKeys.of(q).retired, "v1", int(time.time() * 1000))
    wait_until(lambda: "v1 retired" in v1.log(), what="the v1 worker read its retirement")
    monkeypatch.setenv("KUBEQ_VERSION", "v1")
    pinned = app.enqueue_many([qtasks.pinned_where.s().set(queue=q) for _ in range(5)])
    plain = app.enqueue_many([qtasks.where.s().set(queue=q) for _ in range(10)])
    assert {tuple(j.result(timeout=60)) for j in pinned} == {("v1", str(v1.pid))}
    assert {tuple(j.result(timeout=60)) for j in plain} == {("v2", str(v2.pid))}


def test_a_pinned_call_without_a_version_is_refused(
    app: kubeq.App, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBEQ_VERSION", raising=False)
    with pytest.raises(NoWorkerVersion, match=r"KUBEQ_VERSION is not set.*pin_version=False"):
        app.enqueue_many([qtasks.pinned_where.s().set(queue="pin-none")])
    with pytest.raises(NoWorkerVersion, match="the call's pin_version=True"):
        app.enqueue_many([qtasks.where.s().set(queue="pin-none", pin_version=True)])
    with pytest.raises(ValueError, match="version must be a worker version"):
        app.enqueue_many([qtasks.where.s().set(queue="pin-none", version="no/such")])
    assert r.keys("*pin-none*") == []  # nothing was sent


def test_a_pinned_callback_runs_on_the_version_its_parent_ran_on(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = f"pin-{uuid.uuid4().hex[:6]}"
    two_versions(start_worker, monkeypatch, q)
    monkeypatch.delenv("KUBEQ_VERSION")  # the caller has none: the callback is pinned later
    then = qtasks.where.si().set(queue=q, pin_version=True)
    parents = app.enqueue_many([qtasks.where.s().set(queue=q, on_success=then) for _ in range(4)])
    for parent in parents:
        version, pid = parent.result(timeout=60)
        cid = callback_id(parent.id, "on_success")
        wait_until(
            lambda c=cid: any(r.exists(QueueKeys.of(n).job(c)) for n in (q, f"{q}~v1", f"{q}~v2")),
            what="the callback enqueued",
        )
        child = app.job(cid, f"{q}~{version}")
        assert child.result(timeout=60) == [version, pid]
