"""Partitioned queues without Redis: where calls go, what workers consume, how stats add up."""

from __future__ import annotations

import collections

import pytest

from kubeq import App
from kubeq.options import Call, TaskOptions
from kubeq.store.keys import QueueKeys, validate_queue_name
from kubeq.store.partitions import Partitioner, combine, names, parent, registered
from kubeq.store.stats import QueueStats
from kubeq.worker.fetch import FetchRouter
from kubeq.workflows.callbacks import decode_callback, encode_callback


def test_partitions_are_named_apart_from_any_queue_a_user_can_name() -> None:
    assert names("orders", 3) == ["orders#0", "orders#1", "orders#2"]
    assert names("orders", 1) == ["orders"]
    assert parent("orders#2") == "orders" and parent("orders") == "orders"
    assert validate_queue_name("orders#2") == "orders#2"
    with pytest.raises(ValueError, match="invalid queue name"):
        validate_queue_name("orders#x")


def test_round_robin_spreads_calls_evenly_and_a_key_keeps_its_partition() -> None:
    p = Partitioner({"orders": 4})
    spread = collections.Counter(p.route("orders", Call("t")) for _ in range(400))
    assert spread == dict.fromkeys(names("orders", 4), 100)
    keyed = {p.route("orders", Call("t", partition_key="customer-7")) for _ in range(50)}
    assert len(keyed) == 1
    same_id = {p.route("orders", Call("t", job_id="order-1")) for _ in range(10)}
    assert len(same_id) == 1  # de-duplication by job id still finds the live job
    assert p.route("other", Call("t")) == "other"


def test_a_concurrency_limited_call_goes_to_the_partition_of_its_limit_key() -> None:
    p = Partitioner({"orders": 8})
    task_wide = TaskOptions(concurrency_limit=1)
    placed = {p.route("orders", Call("t"), task_wide) for _ in range(40)}
    assert len(placed) == 1  # every job of the task shares the slots of one partition
    keyed = {p.route("orders", Call("t", limit_key="a", concurrency_limit=2)) for _ in range(40)}
    by_fn = TaskOptions(concurrency_limit=2, limit_key=lambda x: x)
    assert {p.route("orders", Call("t", ("a",)), by_fn) for _ in range(40)} == keyed
    # the limit key wins over the partition key and the job id
    assert p.route("orders", Call("t", partition_key="z", job_id="j"), task_wide) in placed


def test_a_callback_keeps_its_partition_key() -> None:
    call = Call("t", partition_key="customer-7")
    assert decode_callback(encode_callback(call, "on_success")).partition_key == "customer-7"


def test_the_partitions_of_a_queue_are_found_among_known_names() -> None:
    known = ["orders#10", "orders", "orders#2", "orders#0", "orders2#1", "other", "orders#x"]
    assert registered("orders", known) == ["orders#0", "orders#2", "orders#10"]
    assert registered("other", known) == []


@pytest.mark.parametrize("bad", [0, -1, 257, 2.5, "4", True])
def test_a_bad_partition_count_names_the_queue(bad: object) -> None:
    with pytest.raises(ValueError, match=r"partitions\['orders'\]"):
        Partitioner({"orders": bad})  # type: ignore[dict-item]


def test_the_app_routes_its_enqueue_plan_to_partitions() -> None:
    app = App("redis://localhost:1/0", partitions={"orders": 3})
    plan = app._plan([Call("t", queue="orders", partition_key=str(i)) for i in range(30)], None)
    assert set(plan.queues) <= set(names("orders", 3)) and len(plan.queues) == 3
    assert app.queue("orders").partitions == names("orders", 3)
    with pytest.raises(ValueError, match="partition_key"):
        app._plan([Call("t", partition_key="")], None)


def test_one_redis_serves_each_partition_first_in_turn() -> None:
    queues = [QueueKeys.of(n) for n in ["urgent", *names("orders", 3)]]
    r = FetchRouter(queues, cluster=False)
    firsts = []
    for _ in range(3):
        (call,) = r.calls("fetch", "w", 1, 1000, 0, 1000)
        order = call[2][6:]  # the bases, in the order the script serves them
        assert order[0] == queues[0].base  # another queue keeps its place
        firsts.append(order[1])
    assert sorted(firsts) == sorted(q.base for q in queues[1:])


def _stats(queue: str, backlog: int, age: float, workers: dict[str, int]) -> QueueStats:
    return QueueStats(queue, 1.0, backlog, 1, 2, 3, age, False, workers, 1, False, 5.0)


def test_stats_of_a_partitioned_queue_add_up() -> None:
    total = combine(
        "orders",
        [_stats("orders#0", 4, 2.0, {"w1": 1}), _stats("orders#1", 6, 9.0, {"w1": 2, "w2": 0})],
    )
    assert (total.queue, total.backlog, total.in_flight, total.delayed, total.dead) == (
        "orders",
        10,
        2,
        4,
        6,
    )
    assert total.oldest_ready_age == 9.0 and total.workers == {"w1": 3, "w2": 0}
    assert total.rate_limit == 10.0  # a queue's rate limit holds per partition


def test_a_taskqueue_with_partitions_runs_workers_on_every_partition() -> None:
    from kubeq_operator.deployment import worker_command
    from kubeq_operator.spec import SpecError, parse

    doc = {
        "redis": {"url": "redis+cluster://n1:7000"},
        "queues": ["hot", "cold"],
        "partitions": 3,
        "worker": {"image": "i", "tasks": "t"},
    }
    spec = parse(doc)
    assert spec.physical_queues == [*names("hot", 3), *names("cold", 3)]
    cmd = worker_command(spec)
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--queue"] == spec.physical_queues
    assert parse({**doc, "partitions": 1}).physical_queues == ["hot", "cold"]
    assert parse({**doc, "partitions": 1}).worker_hash() != spec.worker_hash()  # rolls workers
    for bad in (0, 257, "3"):
        with pytest.raises(SpecError, match=r"spec\.partitions"):
            parse({**doc, "partitions": bad})
