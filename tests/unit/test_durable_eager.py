"""Durable steps, sleeps and waits in eager mode (no Redis): steps run and return their JSON
round trip, a sleep returns at once, a wait returns a payload set in ``LOCAL_SIGNALS`` or
times out at once; bad arguments are refused naming the field (docs/durable.md)."""

from __future__ import annotations

from typing import Any

import pytest

import kubeq
from kubeq.client import durable
from kubeq.testing import eager

app = kubeq.App("redis://localhost:1")


@app.task(name="durable.eager.flow")
def flow(key: str) -> Any:
    pair = kubeq.step("pair", lambda: (1, 2))
    kubeq.sleep(86_400)
    try:
        got = kubeq.wait_for(key, timeout=10)
    except kubeq.WaitTimeout as exc:
        got = f"timeout: {exc.key}"
    return [pair, got]


def test_steps_sleeps_and_waits_resolve_at_once_in_eager_mode() -> None:
    durable.LOCAL_SIGNALS["go"] = {"ok": True}
    try:
        with eager(app):
            assert flow.delay("go").result() == [[1, 2], {"ok": True}]
            assert flow.delay("never").result() == [[1, 2], "timeout: never"]
    finally:
        durable.LOCAL_SIGNALS.clear()


@app.task(name="durable.eager.bad", max_attempts=1)
def bad(what: str) -> str:
    try:
        if what == "name":
            kubeq.step("~mine", lambda: 1)
        elif what == "sleep":
            kubeq.sleep(-1)
        elif what == "key":
            kubeq.wait_for("")
        else:
            kubeq.step("x", object)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return "accepted"


@pytest.mark.parametrize(
    ("what", "says"),
    [
        ("name", "step name"),
        ("sleep", "kubeq.sleep(seconds) must be 0 to 366 days"),
        ("key", "signal key"),
        ("json", "the result of step 'x' must be JSON"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field(what: str, says: str) -> None:
    with eager(app):
        assert says in bad.delay(what).result()


def test_outside_a_task_a_step_says_where_it_works() -> None:
    with pytest.raises(RuntimeError, match="only available inside a task"):
        kubeq.step("x", lambda: 1)


def test_a_signal_refuses_mode_one_on_a_partitioned_queue_and_bad_json() -> None:
    parted = kubeq.App("redis://localhost:1", partitions={"p": 2})
    with pytest.raises(ValueError, match="not available on a partitioned queue"):
        parted.signal("k", 1, queue="p", mode="one")
    with pytest.raises(TypeError, match="payload of signal 'k' must be JSON"):
        parted.signal("k", float("nan"), queue="p")
