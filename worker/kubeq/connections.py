"""Where the Redis URL comes from, how the password gets in, and how a URL is shown.

The URL defaults to ``KUBEQ_REDIS_URL``, else ``redis://localhost:6379/0``. A password kept
in a Kubernetes Secret arrives as ``KUBEQ_REDIS_PASSWORD`` and is passed to redis-py
separately, so it never appears in a URL, a log line or a process listing.
``rediss://`` URLs use TLS.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio

from . import defaults

DEFAULT_URL = defaults.REDIS_URL


def resolve_url(url: str | None = None) -> str:
    """The URL to use: the argument, else KUBEQ_REDIS_URL, else the local default."""
    return url or os.environ.get("KUBEQ_REDIS_URL") or DEFAULT_URL


_SECRET_PARAMS = {"password", "username", "user"}


def redact(url: str) -> str:
    """The URL with any password (in the user part or the query) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.query:
        query = [
            (k, "***" if k.lower() in _SECRET_PARAMS else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=f"{user}:***@{host}")
    return urlunsplit(parts)


def _options(extra: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_connect_timeout": 5.0,
        # above the longest blocking wait kubeq issues (5 s in job.result), below what
        # would make a dead connection hang a worker for long
        "socket_timeout": 15.0,
        "health_check_interval": 15,
        "retry_on_timeout": False,
    }
    password = os.environ.get("KUBEQ_REDIS_PASSWORD")
    if password:
        options["password"] = password
    options.update(extra)
    return options


def sync_client(url: str | None = None, **extra: Any) -> redis.Redis:
    """A redis-py client (bytes responses) for the resolved URL."""
    return redis.Redis.from_url(resolve_url(url), **_options(extra))


def async_client(url: str | None = None, **extra: Any) -> redis.asyncio.Redis:
    """A redis-py asyncio client (bytes responses) for the resolved URL."""
    return redis.asyncio.Redis.from_url(resolve_url(url), **_options(extra))
