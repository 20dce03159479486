"""The body of the gateway's signal route, parsed without a gateway: the payload's size bound
(the route's tests, tests/gateway/test_gateway_signal.py, run a gateway whose body bound is
smaller), a partition named for a signal by key, and the defaults."""

from __future__ import annotations

import pytest

from kubeq import defaults, serialization
from kubeq.gateway.kube import Refused
from kubeq.gateway.signals import SignalRequest, parse_signal

QUEUES = ("orders", "mail")


def _refused_field(doc: object) -> str | None:
    with pytest.raises(Refused) as caught:
        parse_signal(serialization.dumps(doc), QUEUES)
    assert caught.value.status == 400
    return caught.value.field


def test_a_payload_over_the_step_bound_is_refused_naming_it() -> None:
    big = "x" * defaults.MAX_STEP_BYTES
    assert _refused_field({"key": "k", "payload": big}) == "payload"


def test_a_signal_by_key_goes_to_a_whole_queue() -> None:
    assert _refused_field({"key": "k", "queue": "orders#2"}) == "queue"
    by_job = parse_signal(b'{"job": "j1", "queue": "orders#2"}', QUEUES)
    assert by_job == SignalRequest(job="j1", queue="orders#2")


def test_the_defaults() -> None:
    assert parse_signal(b'{"key": "k"}', QUEUES) == SignalRequest(key="k", queue="orders")
    got = parse_signal(
        b'{"key": "k", "payload": [1], "queue": "mail", "mode": "one", "ttl": 0}', QUEUES
    )
    assert got == SignalRequest(key="k", payload=[1], queue="mail", mode="one", ttl=0.0)
