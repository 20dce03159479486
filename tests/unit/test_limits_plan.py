"""Execution control on the client side: rate-limit strings, limit options refused where they
are written (naming the field), and the control fields a job carries to enqueue.lua."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson
import pytest

import kubeq
from kubeq import Call
from kubeq.client.enqueue import laid_out, plan_enqueue
from kubeq.options import RateLimit, TaskOptions
from kubeq.store.scripts import source


@pytest.mark.parametrize(
    ("text", "count", "period_ms", "burst"),
    [
        ("10/s", 10, 1000, 2),
        (" 100 / m ", 100, 60_000, 2),
        ("1000/h", 1000, 3_600_000, 2),
        ("1000/s", 1000, 1000, 50),  # a fast limit's burst covers 50 ms of its rate
        ("1/s", 1, 1000, 1),  # never more than the count
    ],
)
def test_rate_limits_parse(text: str, count: int, period_ms: int, burst: int) -> None:
    rl = RateLimit.parse(text)
    assert (rl.count, rl.period_ms, rl.burst) == (count, period_ms, burst)
    assert str(rl) == text.replace(" ", "")


@pytest.mark.parametrize("bad", ["10", "10/d", "0/s", "-1/s", "1.5/s", "ten/s", 10, 1.5])
def test_a_bad_rate_limit_names_the_field_and_the_form(bad: object) -> None:
    with pytest.raises(ValueError, match=r"rate_limit must look like '10/s'"):
        RateLimit.parse(bad)
    app = kubeq.App("redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="rate_limit"):
        app.task(rate_limit=bad)(lambda: None)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"concurrency_limit": 0}, "concurrency_limit"),
        ({"concurrency_limit": True}, "concurrency_limit"),
        ({"limit_key": lambda: "k"}, "limit_key needs concurrency_limit"),
        ({"concurrency_limit": 2, "limit_key": "not callable"}, "limit_key must be a function"),
        ({"expires": 0}, "expires"),
        ({"expires": math.inf}, "expires"),
        ({"soft_timeout": -1}, "soft_timeout"),
    ],
)
def test_limit_options_are_refused_at_definition(options: dict[str, object], field: str) -> None:
    app = kubeq.App("redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match=field):
        app.task(**options)(lambda: None)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"limit_key": ""}, "limit_key"),
        ({"limit_key": "a\nb"}, "limit_key"),
        ({"limit_key": "x" * 201}, "limit_key"),
        ({"expires": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"expires": -5}, "expires"),
        ({"soft_timeout": math.nan}, "soft_timeout"),
    ],
)
def test_a_call_refuses_bad_limit_options(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        plan_enqueue([Call("t.x", **options)])  # type: ignore[arg-type]


def _control(plan_args: list[object], index: int = 0) -> dict[str, object]:
    raw = laid_out(plan_args)[index][6]
    return orjson.loads(raw) if raw else {}  # type: ignore[arg-type]


def test_a_task_s_call_carries_its_limits_to_the_script() -> None:
    app = kubeq.App("redis://127.0.0.1:1/0")

    @app.task(rate_limit="5/s", concurrency_limit=3, limit_key=lambda url: url.split("/")[2])
    def fetch(url: str) -> None: ...

    other = kubeq.App("redis://127.0.0.1:1/0")  # enqueued by an App that does not know it
    plan = plan_enqueue(
        [fetch.s("https://a.example/x"), fetch.s("https://b.example/y").set(limit_key="mine")],
        defaults_for=other.defaults_for,
    )
    args = plan.calls[0][2]
    assert _control(args, 0) == {
        "rl_key": fetch.name,
        "rl_n": 5,
        "rl_ms": 1000,
        "rl_b": 2,
        "cl_key": "k:a.example",
        "cl_n": 3,
    }
    assert _control(args, 1)["cl_key"] == "k:mine"
    # every field it sends is one enqueue.lua accepts
    for name in _control(args, 0):
        assert f"k == '{name}'" in source("enqueue")


def test_no_key_limits_the_task_and_expiry_is_on_the_servers_clock() -> None:
    opts = TaskOptions(concurrency_limit=1, expires=2.5)
    at = datetime(2030, 1, 1, tzinfo=UTC)
    plan = plan_enqueue([Call("t.x"), Call("t.x", expires=at)], defaults_for=lambda n: opts)
    args = plan.calls[0][2]
    assert _control(args, 0) == {"cl_key": "t:t.x", "cl_n": 1, "expires": "+2500"}
    assert _control(args, 1)["expires"] == str(int(at.timestamp() * 1000))
    assert _control(plan_enqueue([Call("t.y")]).calls[0][2]) == {}  # none: nothing sent


def test_a_failing_limit_key_function_is_reported_with_the_task() -> None:
    app = kubeq.App("redis://127.0.0.1:1/0")

    @app.task(concurrency_limit=1, limit_key=lambda d: d["site"])
    def scrape(d: dict[str, str]) -> None: ...

    with pytest.raises(ValueError, match=r"limit_key function failed.*KeyError"):
        scrape.s({})
    with pytest.raises(ValueError, match="the key its limit_key function returned"):
        scrape.s({"site": ""})
