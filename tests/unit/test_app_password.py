"""A password given to App (e.g. read from a Secret) reaches the Redis client, not the URL."""

import pytest

import kubeq


def test_password_argument_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEQ_REDIS_PASSWORD", "from-env")
    app = kubeq.App("redis://127.0.0.1:1/0", password="from-secret")
    assert app.redis.connection_pool.connection_kwargs["password"] == "from-secret"
    assert "from-secret" not in repr(app)
    assert (
        kubeq.App("redis://127.0.0.1:1/0").redis.connection_pool.connection_kwargs["password"]
        == "from-env"
    )


def test_redact_hides_passwords_in_user_part_and_query() -> None:
    from kubeq.store.urls import redact

    assert redact("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("rediss://u:s3cret@h/0") == "rediss://u:***@h/0"
    hidden = redact("redis://h:6379/0?password=s3cret&socket_timeout=5")
    assert "s3cret" not in hidden and "socket_timeout=5" in hidden
    assert redact("redis://h:6379/0") == "redis://h:6379/0"
