"""When an idle worker trims its heap (kubeq.worker.memtrim.IdleTrim): once after start-up,
never while it holds a job, once more after each burst of jobs, and not again while idle."""

from __future__ import annotations

import pytest

from kubeq.worker.memtrim import IdleTrim


def test_one_trim_per_idle_spell() -> None:
    calls: list[int] = []
    trim = IdleTrim(lambda pad: calls.append(pad) or 1)
    assert trim.beat(0, []) is True  # start-up's garbage
    assert trim.beat(0, []) is False  # still idle, nothing ended since
    assert trim.beat(2, [{"finished": 5}]) is False  # busy: never while a job is held
    assert trim.beat(0, [{"finished": 9}, {"failed": 1}]) is True  # the burst ended
    assert trim.beat(0, [{"finished": 9}, {"failed": 1}]) is False
    assert calls == [0, 0] and trim.trims == 2


def test_kubeq_malloc_trim_0_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEQ_MALLOC_TRIM", "0")
    assert IdleTrim().beat(0, []) is False
