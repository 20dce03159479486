"""Values that could pass validation and break later: each is
refused where it is written, with the field's name."""

from __future__ import annotations

import math

import pytest

import kubeq
from kubeq import Call, serialization
from kubeq.client.enqueue import plan_enqueue
from kubeq.store.keys import validate_job_id, validate_queue_name


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"result_ttl": 0}, "result_ttl"),
        ({"result_ttl": 1.5}, "result_ttl"),
        ({"result_ttl": 10**17}, "result_ttl"),
        ({"max_deliveries": 0}, "max_deliveries"),
        ({"priority": True}, "priority"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"backoff_max": math.inf}, "backoff"),
        ({"pool": "fork"}, "pool"),
    ],
)
def test_a_task_definition_refuses_what_every_run_would_refuse(
    options: dict[str, object], field: str
) -> None:
    app = kubeq.App("redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match=field):
        app.task(**options)(lambda: None)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"result_ttl": 1.5}, "result_ttl"),
        ({"result_ttl": 10**17}, "result_ttl"),
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"delay": math.nan}, "delay"),
        ({"max_attempts": True}, "max_attempts"),
    ],
)
def test_a_call_refuses_bad_values_before_anything_is_sent(
    options: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        plan_enqueue([Call("t.x", **options)])  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1, {"a": math.nan}]])
def test_nan_and_infinity_are_refused_not_turned_into_null(value: object) -> None:
    with pytest.raises(kubeq.SerializationError, match="not a JSON number"):
        serialization.encode_call("t.x", (value,), {})
    with pytest.raises(TypeError):
        serialization.dumps({"result": value})
    assert serialization.dumps([None, 1.5]) == b"[null,1.5]"  # a real null still passes


@pytest.mark.parametrize("bad", ["default\n", "a b", "", "x" * 129])
def test_queue_names_and_job_ids_must_match_whole(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid queue name"):
        validate_queue_name(bad)
    with pytest.raises(ValueError, match="invalid job_id"):
        validate_job_id(bad if len(bad) < 129 else "x" * 201)
