"""The operator's gauges of the flow patterns (docs/patterns.md): each QueueStats number of
debounced jobs, singleton keys, batches forming and batched items is published per queue,
and dropped with its TaskQueue."""

from __future__ import annotations

from dataclasses import replace

from kubeq.store.stats import QueueStats
from kubeq_operator import metrics
from kubeq_operator.spec import parse
from tests.operator.test_loop import Events, make_loop


def test_the_flow_numbers_are_gauges_per_queue() -> None:
    loop = make_loop(Events(), "flows")
    stats = replace(
        QueueStats("q", 0.0, 1, 0, 0, 0, 0.0, False),
        debounced=3,
        singleton_keys=2,
        batches_forming=1,
        batched_items=7,
    )
    spec = parse({"redis": {"url": "redis://x:1/0"}, "worker": {"image": "w:1", "tasks": "t"}})
    loop.update_numbers(spec, [stats], None)
    labels = {"namespace": "ns", "taskqueue": "flows", "queue": "q"}
    got = {
        name: metrics.REGISTRY.get_sample_value(f"kubeq_queue_{name}", labels)
        for name in ("debounced", "singleton_keys", "batches_forming", "batched_items")
    }
    assert got == {"debounced": 3, "singleton_keys": 2, "batches_forming": 1, "batched_items": 7}
    metrics.forget("ns", "flows", ["q"])
    assert metrics.REGISTRY.get_sample_value("kubeq_queue_batched_items", labels) is None
