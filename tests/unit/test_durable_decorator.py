"""The decorator form of ``kubeq.step`` without Redis: outside a task a decorated function is
a plain call; in eager mode each call is its own step, returned as JSON reads it back; a bad
name or target is refused naming the fix (docs/durable.md)."""

from __future__ import annotations

from typing import Any

import pytest

import kubeq
from kubeq.testing import eager

app = kubeq.App("redis://localhost:1")
calls: list[int] = []


@kubeq.step("double")
def double(x: int) -> tuple[int, int]:
    calls.append(x)
    return (x, 2 * x)


@kubeq.step
async def triple(x: int) -> int:
    return 3 * x


@app.task(name="durable.decorated.flow")
def flow() -> Any:
    return [double(1), double(2), kubeq.current_job(required=True).durable["steps"]]


@app.task(name="durable.decorated.aflow")
async def aflow() -> Any:
    return [await triple(1), await triple(2), kubeq.current_job(required=True).durable["steps"]]


def test_outside_a_task_a_decorated_step_is_a_plain_call() -> None:
    calls.clear()
    assert double(3) == (3, 6) and double(3) == (3, 6)  # no record: runs, and a tuple
    assert calls == [3, 3]
    assert double.__name__ == "double" and triple.__qualname__ == "triple"


def test_in_eager_mode_each_call_is_its_own_step() -> None:
    with eager(app):
        assert flow.delay().result() == [
            [1, 2],
            [2, 4],
            {"double": [1, 2], "double#2": [2, 4]},
        ]
        assert aflow.delay().result() == [3, 6, {"triple": 3, "triple#2": 6}]


def test_a_bad_decorator_is_refused_naming_the_fix() -> None:
    with pytest.raises(ValueError, match="not starting with '~'"):
        kubeq.step("~mine")
    with pytest.raises(ValueError, match=r"at most 192 characters .*@kubeq.step\('name'\)"):
        kubeq.step("x" * 199)(print)
    with pytest.raises(TypeError, match="decorates a function"):
        kubeq.step("x")(42)  # type: ignore[type-var]
