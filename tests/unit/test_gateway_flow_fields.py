"""The gateway's debounce and singleton fields (docs/patterns.md) become the call's options;
a bad one, alone or against the others, is a 400 naming that field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubeq.gateway.jobs import parse_body
from kubeq.gateway.kube import Refused


def parse(**fields: Any) -> Any:
    return parse_body(json.dumps({"task": "t", **fields}).encode(), ("q",))[0]


def test_the_fields_set_the_call() -> None:
    c = parse(debounce=2, debounce_max=10, debounce_key="doc-1")
    assert (c.debounce, c.debounce_max, c.debounce_key) == (2.0, 10.0, "doc-1")
    c = parse(singleton="keep_latest", singleton_key="acct-1")
    assert (c.singleton, c.singleton_key) == ("keep_latest", "acct-1")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"debounce": 0}, "debounce"),
        ({"debounce": 1, "debounce_max": 0.5}, "debounce_max"),
        ({"debounce_max": 5}, "debounce_max"),
        ({"debounce_key": "x"}, "debounce_key"),
        ({"debounce": 1, "debounce_key": ""}, "debounce_key"),
        ({"singleton": "sometimes"}, "singleton"),
        ({"debounce": 1, "singleton": "skip"}, "singleton"),
        ({"singleton_key": "a"}, "singleton_key"),
        ({"singleton": "skip", "singleton_key": 7}, "singleton_key"),
    ],
)
def test_a_bad_field_is_named(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(Refused) as refused:
        parse(**fields)
    assert refused.value.field == field and refused.value.status == 400
