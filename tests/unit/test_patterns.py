"""Debounce, singleton and batch options as pure logic (patterns.py), and in eager mode: each
call runs at once (a batch item as a batch of one), through the worker's own attempt code."""

from __future__ import annotations

from typing import Any

import pytest

import kubeq
from kubeq.patterns import Flow, batch_flow, flow_of
from kubeq.testing import eager

NONE = (None, None, None, None, None)


def test_a_call_s_options_win_over_its_task_s() -> None:
    task = (5.0, 30.0, lambda doc: doc, None, None)
    assert flow_of("t", ("d1",), {}, NONE, task) == Flow("debounce", "t:d1", 5000, 30000)
    mine = (0.5, None, "k", None, None)
    assert flow_of("t", ("d1",), {}, mine, task) == Flow("debounce", "t:k", 500, 0)
    single = (None, None, None, "skip", None)
    assert flow_of("t", ("d1",), {}, single, task) == Flow("skip", "t:t")
    assert flow_of("t", (), {}, NONE, NONE) is None


def test_a_batch_item_is_one_argument() -> None:
    b = kubeq.Batch(max_size=3, max_wait=0.25, key=lambda e: e["k"])
    assert batch_flow("t", b, ({"k": "x"},), {}) == Flow("batch", "t:x", 250, 3)
    with pytest.raises(ValueError, match="call it with one item"):
        batch_flow("t", b, (), {"e": 1})
    with pytest.raises(ValueError, match="its Batch key function failed"):
        batch_flow("t", b, (5,), {})


def test_eager_mode_runs_each_call_at_once() -> None:
    app = kubeq.App("redis://127.0.0.1:1")  # never reached in eager mode
    seen: list[Any] = []

    @app.task(debounce=5)
    def reindex(doc: str) -> str:
        seen.append(doc)
        return doc

    @app.task(singleton="keep_latest")
    def sync(account: str) -> str:
        return account

    @app.task(batch=kubeq.Batch(max_size=10, max_wait=1), max_attempts=1)
    def insert(events: list[int]) -> list[Any]:
        seen.append(list(events))
        return [ValueError("odd") if e % 2 else e * 10 for e in events]

    with eager(app):
        assert reindex.delay("a").result() == "a"
        assert sync.delay("acct").result() == "acct"
        assert insert.delay(2).result() == 20
        with pytest.raises(kubeq.JobFailed, match="odd"):
            insert.delay(3).result()
    assert seen == ["a", [2], [3]]
