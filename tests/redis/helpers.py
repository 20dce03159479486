"""Polling and round-trip counting for the redis-tier tests."""

from __future__ import annotations

from collections.abc import Callable

import redis

from localcluster.pytest_plugin import wait_for


def wait_until(predicate: Callable[[], object], timeout: float = 30, what: str = "") -> None:
    """Poll until predicate() is truthy; fail after timeout (never a timing assertion)."""
    wait_for(predicate, timeout=timeout, interval=0.05, message=what or repr(predicate))


def evalsha_calls(client: redis.Redis) -> int:
    """How many EVALSHA commands the server has run (to count round trips of scripts)."""
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
