"""redis+sentinel:// URLs: parsed, shown without secrets, accepted in a TaskQueue spec."""

from __future__ import annotations

import pytest

from kubeq.store.urls import parse_sentinel_url, redact
from kubeq_operator.spec import SpecError, parse

URL = "redis+sentinel://:pw@s1:26379,s2:26380/mymaster/2?sentinel_password=sp&ssl_ca_certs=/ca"


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_db() -> None:
    t = parse_sentinel_url(URL)
    assert t is not None
    assert t.sentinels == [("s1", 26379), ("s2", 26380)]
    assert (t.service, t.db, t.password, t.sentinel_password) == ("mymaster", 2, "pw", "sp")
    assert t.options == {"ssl_ca_certs": "/ca"} and not t.ssl
    assert parse_sentinel_url("rediss+sentinel://s1/m").ssl  # type: ignore[union-attr]
    assert parse_sentinel_url("redis://localhost:6379/0") is None


def test_secrets_in_a_sentinel_url_are_never_shown() -> None:
    shown = redact(URL)
    assert "pw" not in shown and "=sp" not in shown
    assert shown.startswith("redis+sentinel://:***@s1:26379,s2:26380/mymaster/2")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://s1:26379", "name the master's service"),
        ("redis+sentinel://s1:x/m", "bad sentinel address"),
        ("redis+sentinel://s1/m/zero", "name the master's service"),
    ],
)
def test_a_malformed_sentinel_url_says_what_to_fix(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_sentinel_url(url)
    spec = {"redis": {"url": url}, "worker": {"image": "i", "tasks": "t"}}
    with pytest.raises(SpecError, match=r"spec\.redis\.url"):
        parse(spec)


def test_a_taskqueue_may_point_at_sentinels() -> None:
    spec = {
        "redis": {"url": "redis+sentinel://s1:26379,s2:26379/mymaster/0"},
        "worker": {"image": "i", "tasks": "t"},
    }
    assert parse(spec).redis.url.startswith("redis+sentinel://")
