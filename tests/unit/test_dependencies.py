"""``depends_on`` naming: each parent once, in first-named order, in linear time."""

from __future__ import annotations

import time

from kubeq.options import Call
from kubeq.workflows import dependencies


def test_parents_are_deduplicated_in_first_named_order() -> None:
    class Handle:
        def __init__(self, queue: str, id: str) -> None:
            self.queue, self.id = queue, id

    a, b = Handle("default", "a"), Handle("other", "b")
    call = Call("t", (), {}, depends_on=[a, "a", b, a, Handle("default", "a")])
    assert dependencies.parents_of(call, "default") == [("default", "a"), ("other", "b")]
    assert dependencies.distinct(call, "default").depends_on == [a, b]


def test_many_parents_are_deduplicated_in_linear_time() -> None:
    """50,000 parents: a quadratic de-duplication takes tens of seconds, a linear one a few
    hundredths; the bound leaves room for a loaded machine."""
    ids = [f"p{i}" for i in range(50_000)]
    started = time.perf_counter()
    parents = dependencies.parents_of(Call("t", (), {}, depends_on=ids + ids), "default")
    assert time.perf_counter() - started < 2.0
    assert len(parents) == 50_000
