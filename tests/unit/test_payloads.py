"""Payload validation: JSON only, errors that name the argument, malformed payloads named."""

from datetime import UTC, datetime

import pytest

import kubeq
from kubeq.client.app import Call
from kubeq.serialization import decode_call, encode_call


def test_round_trip_of_plain_json_types() -> None:
    payload = encode_call("m.t", (1, "a", None, [1.5]), {"k": {"x": True}}, {"timeout": 3})
    assert decode_call(payload) == (
        "m.t",
        [1, "a", None, [1.5]],
        {"k": {"x": True}},
        {"timeout": 3},
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        ((1, {1, 2}), {}, "argument 1"),
        ((), {"when": datetime.now(UTC)}, "argument 'when'"),
        ((object(),), {}, "argument 0"),
        ((), {"big": 2**70}, "argument 'big'"),
    ],
)
def test_unserializable_argument_is_named(
    args: tuple[object, ...], kwargs: dict[str, object], named: str
) -> None:
    with pytest.raises(kubeq.SerializationError, match=named):
        encode_call("m.t", args, kwargs)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"not json", "not valid JSON"),
        (b"[1,2]", "expected a JSON object"),
        (b'{"args": []}', "'task' must be a non-empty string"),
        (b'{"task": "t", "args": {}}', "'args' must be a JSON array"),
        (b'{"task": "t", "kwargs": []}', "'kwargs' must be a JSON object"),
    ],
)
def test_malformed_payload_says_what_is_wrong(payload: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decode_call(payload)


def test_call_options_are_checked() -> None:
    with pytest.raises(ValueError, match="either delay or eta"):
        Call("t", delay=1, eta=5).run_at_ms()
    with pytest.raises(ValueError, match="timezone-aware"):
        Call("t", eta=datetime(2030, 1, 1)).run_at_ms()
    assert Call("t").run_at_ms() == 0


def test_task_registration_checks_options_and_name_clashes() -> None:
    app = kubeq.App("redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="priority must be an integer from 0"):
        app.task(priority=12)
    with pytest.raises(ValueError, match="pool must be one of"):
        app.task(pool="fork")

    @app.task(name="same")
    def one() -> None: ...

    with pytest.raises(ValueError, match="two tasks are named 'same'"):

        @app.task(name="same")
        def two() -> None: ...


def test_a_task_still_runs_when_called_directly() -> None:
    app = kubeq.App("redis://127.0.0.1:1/0")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add(2, 3) == 5
    assert add.name.endswith(".add")


def test_delays_are_counted_on_the_server_clock_and_etas_are_absolute() -> None:
    assert Call("t", delay=1.5).due() == "+1500"
    assert Call("t", delay=0).due() == "0"
    assert Call("t", eta=1_900_000_000).due() == "1900000000000"
    assert Call("t").due() == "0"


def test_per_call_retry_overrides_are_checked_against_the_task() -> None:
    from kubeq.client.app import check_call, check_retry_overrides
    from kubeq.retry import RetryPolicy

    with pytest.raises(ValueError, match="backoff_min <= backoff_max"):
        check_retry_overrides(Call("t", backoff_min=600), RetryPolicy(backoff_max=300))
    with pytest.raises(ValueError, match="timeout must be > 0"):
        check_call(Call("t", timeout=0))
    check_retry_overrides(Call("t", backoff_min=600, backoff_max=900), RetryPolicy())
