"""Polling and round-trip counting for the redis-tier tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis


def wait_until(predicate: Callable[[], object], timeout: float = 30, what: str = "") -> None:
    """Poll until predicate() is truthy; fail after timeout (never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)


def evalsha_calls(client: redis.Redis) -> int:
    """How many EVALSHA commands the server has run (to count round trips of scripts)."""
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
