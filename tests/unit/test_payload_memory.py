"""A payload or result kubeq encodes holds the memory of its bytes, not of the encoder's
buffer: orjson returns its whole write buffer (4 KB at least, even for ``null``), and kubeq
holds encoded values until their round trip (a bulk enqueue's 20,000 payloads, a busy
worker's results waiting for their acknowledgement). Measured with tracemalloc, which counts
what Python allocated, so the figures do not depend on the machine or its load."""

from __future__ import annotations

import tracemalloc

from kubeq import serialization
from kubeq.client.enqueue import plan_enqueue
from kubeq.options import Call, TaskOptions


def _bytes_held_each(make: object, n: int = 1000) -> float:
    assert callable(make)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [make() for _ in range(n)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(held) == n
    return (after - before) / n


def test_an_encoded_small_value_holds_about_its_own_size() -> None:
    for value in (None, {"ok": True}, [1, 2, 3], "x" * 100):
        encoded = serialization.dumps(value)
        held = _bytes_held_each(lambda v=value: serialization.dumps(v))  # type: ignore[misc]
        # a bytes object's header is 33 bytes; allow the allocator's rounding on top
        assert held <= len(encoded) + 33 + 64, (value, held)


def test_a_bulk_enqueue_plan_holds_well_under_the_encoders_buffer_per_job() -> None:
    calls = [Call("tasks.add", (i, 2), {}) for i in range(2000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        plan = plan_enqueue(calls, defaults_for=lambda _: TaskOptions())
        per_job = (tracemalloc.get_traced_memory()[0] - before) / len(calls)
    finally:
        tracemalloc.stop()
    assert len(plan.job_ids) == len(calls)
    assert per_job < 2048, f"{per_job:.0f} bytes held per planned job"
