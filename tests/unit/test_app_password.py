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
