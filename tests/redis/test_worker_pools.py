"""Worker pools at enqueue, against a real Redis: a job of a pool goes to ``<queue>@<pool>``
(named in code or listed in the pool's tasks), only that pool's workers run it, and a pool the
queue's TaskQueue does not declare is refused before anything is written."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import qtasks
import redis

import kubeq
from kubeq.client import pools
from tests.redis.workers import StartWorker


def declare(r: redis.Redis, queue: str, **declared: list[str]) -> None:
    """What the operator publishes for a TaskQueue with these pools (name -> tasks)."""
    pools.publish(r, kubeq.defaults.PREFIX, "ns/tq", [queue], declared)


def fresh(tag: str) -> str:
    return f"wp-{tag}-{uuid.uuid4().hex[:6]}"


def test_a_pool_not_declared_is_refused_naming_it_and_the_declared_ones(
    app: kubeq.App, r: redis.Redis
) -> None:
    q = fresh("refuse")
    declare(r, q, fast=[], slow=[])
    with pytest.raises(pools.UnknownWorkerPool) as e:
        app.enqueue_many([qtasks.add.s(1, 2).set(queue=q, worker_pool="gpu")])
    message = str(e.value)
    assert "'gpu'" in message and "ns/tq" in message and "fast, slow" in message, message
    with pytest.raises(pools.UnknownWorkerPool, match="'gpu'"):  # the awaited twin too
        asyncio.run(app.aenqueue_many([qtasks.add.s(1, 2).set(queue=q, worker_pool="gpu")]))
    # a queue no TaskQueue declares pools for: refused too (no pod would consume it)
    lone = fresh("lone")
    with pytest.raises(pools.UnknownWorkerPool, match="no TaskQueue declares worker pools"):
        app.enqueue_many([qtasks.add.s(1, 2).set(queue=lone, worker_pool="fast")])
    # a mixed batch is refused whole: nothing was written anywhere
    with pytest.raises(pools.UnknownWorkerPool):
        app.enqueue_many(
            [qtasks.add.s(0, 0).set(queue=q), qtasks.add.s(1, 1).set(queue=q, worker_pool="x")]
        )
    for name in (q, f"{q}@gpu", f"{q}@x", lone, f"{lone}@fast"):
        assert app.queue(name).stats().backlog == 0, name
    with pytest.raises(ValueError, match="worker_pool must be a worker pool's name"):
        app.enqueue_many([qtasks.add.s(1, 2).set(queue=q, worker_pool="GPU!")])


@pytest.mark.also_redis_cluster
def test_a_pools_jobs_go_to_its_queue_and_only_its_workers_run_them(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    q = fresh("route")
    declare(r, q, fast=[], slow=["qtasks.add"])
    named = app.task(name="qtasks.worker_pid", queue=q, worker_pool="fast")(qtasks.worker_pid.func)
    by_code = named.delay()
    by_call = app.enqueue_many([kubeq.Call("qtasks.worker_pid", queue=q, worker_pool="slow")])[0]
    by_spec = app.enqueue_many([qtasks.add.s(2, 3).set(queue=q)])[0]  # listed in slow's tasks
    plain = app.enqueue_many([kubeq.Call("qtasks.cpu_pid", queue=q)])[0]  # no pool
    assert (by_code.queue, by_call.queue, by_spec.queue, plain.queue) == (
        f"{q}@fast",
        f"{q}@slow",
        f"{q}@slow",
        q,
    )
    slow = start_worker("--queue", f"{q}@slow")
    assert by_call.result(timeout=30) == slow.pid
    assert by_spec.result(timeout=30) == 5
    # the slow pool's worker never takes the fast pool's job nor the TaskQueue's own
    assert app.queue(f"{q}@fast").stats().backlog == 1
    assert app.queue(q).stats().backlog == 1
    fast = start_worker("--queue", f"{q}@fast")
    assert by_code.result(timeout=30) == fast.pid


def test_a_pool_declared_later_is_routed_once_the_cached_table_is_old(
    app: kubeq.App, r: redis.Redis
) -> None:
    q = fresh("later")
    assert app.enqueue_many([qtasks.add.s(1, 1).set(queue=q)])[0].queue == q
    declare(r, q, gpu=["qtasks.add"])
    app.pools.forget()  # what WORKER_POOLS_CACHE_SECONDS does by itself
    assert app.enqueue_many([qtasks.add.s(1, 1).set(queue=q)])[0].queue == f"{q}@gpu"


@pytest.mark.also_redis_cluster
def test_a_partitioned_queues_pool_keeps_the_partition(r: redis.Redis, redis_url: str) -> None:
    q = fresh("part")
    declare(r, q, gpu=[])
    app = kubeq.App(redis_url, partitions={q: 2})
    try:
        jobs = app.enqueue_many(
            [qtasks.add.s(i, i).set(queue=q, worker_pool="gpu") for i in range(6)]
        )
        assert {j.queue for j in jobs} == {f"{q}@gpu#0", f"{q}@gpu#1"}
    finally:
        app.close()


def test_routing_without_redis_is_pure() -> None:
    """The table decides; the route adds the pool after the partition is chosen."""
    table = {"default": pools.QueuePools("ns/tq", {"gpu": ("t.infer",)})}
    route = pools.router(table, lambda q, _c, _o: f"{q}#1")
    opts = kubeq.TaskOptions()
    assert route("default", kubeq.Call("t.infer"), opts) == "default@gpu#1"
    assert route("default", kubeq.Call("t.other"), opts) == "default#1"
    with pytest.raises(pools.UnknownWorkerPool, match="its pools: gpu"):
        route("default", kubeq.Call("t.other", worker_pool="cpu"), opts)


def test_a_callback_naming_a_pool_is_refused_naming_the_queue_to_give(app: kubeq.App) -> None:
    """The worker hands callbacks off without the pools table: a worker_pool there would be
    dropped, so it is refused where it is written."""
    q = fresh("cb")
    follow = qtasks.add.s(1).set(worker_pool="gpu")
    with pytest.raises(ValueError, match=r"on_success: a callback .* queue='default@gpu'"):
        app.enqueue_many([qtasks.add.s(1, 2).set(queue=q, on_success=follow)])
    assert app.queue(q).stats().backlog == 0


def test_a_debounced_call_naming_a_pool_is_refused(app: kubeq.App, r: redis.Redis) -> None:
    q = fresh("flow")
    declare(r, q, gpu=[])
    call = qtasks.add.s(1, 2).set(queue=q, worker_pool="gpu", debounce=5, debounce_key="k")
    with pytest.raises(ValueError, match="not routed to worker pool 'gpu'"):
        app.enqueue_many([call])
    for name in (q, f"{q}@gpu"):
        assert app.queue(name).stats().debounced == 0
