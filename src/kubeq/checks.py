"""The checks of option values shared by the client, the worker, the gateway and the store:
each returns the value to use or raises ValueError naming the field and what it accepts."""

from __future__ import annotations

import math
import re
from datetime import datetime

from kubeq import defaults

MAX_TTL = 315_360_000
"""Ten years in seconds: the longest result_ttl (Redis refuses far larger expiries)."""
MAX_COUNT = 1_000_000
"""The largest max_attempts or max_deliveries that makes sense."""


def check_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    """A finite number of seconds (> 0, or >= 0), or ValueError naming the field."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds (a finite number), got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_count(name: str, value: object, *, low: int = 1, high: int = MAX_COUNT) -> int:
    """A whole number within [low, high], or ValueError naming the field."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return value


def check_priority(priority: object) -> int:
    """The priority, or ValueError naming the allowed range."""
    if (
        not isinstance(priority, int)
        or isinstance(priority, bool)
        or not defaults.PRIORITY_MIN <= priority <= defaults.PRIORITY_MAX
    ):
        raise ValueError(
            f"priority must be an integer from {defaults.PRIORITY_MIN} (lowest) to "
            f"{defaults.PRIORITY_MAX} (highest), got {priority!r}"
        )
    return priority


def check_timeout(value: object, where: str = "timeout") -> float | None:
    """None (no limit) or a finite number of seconds > 0."""
    return None if value is None else check_seconds(where, value)


def _check_key(value: object, where: str, example: str) -> str:
    """A key named by the caller: a non-empty printable string of at most 200 characters."""
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= defaults.LIMIT_KEY_MAX
        or not value.isprintable()
    ):
        raise ValueError(
            f"{where} must be a non-empty printable string of at most "
            f"{defaults.LIMIT_KEY_MAX} characters (e.g. {example}), got {value!r}"
        )
    return value


def check_limit_key(value: object, where: str = "limit_key") -> str:
    """A concurrency-limit key: a non-empty string of printable characters, at most 200."""
    return _check_key(value, where, "a domain name")


def check_fair_key(value: object, where: str = "fair_key") -> str:
    """A fairness key: a non-empty printable string of at most 200 characters."""
    return _check_key(value, where, "a tenant's name")


def check_expires(value: object, where: str = "expires") -> float | datetime | None:
    """None, seconds after enqueue (> 0), or a timezone-aware datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{where} must be timezone-aware, e.g. datetime.now(UTC)")
        return value
    return check_seconds(where, value)


def expires_spec(value: float | datetime) -> str:
    """For enqueue.lua: "+<ms>" after enqueue on the Redis server's clock, or "<ms>" since the
    epoch for a datetime."""
    if isinstance(value, datetime):
        return str(int(value.timestamp() * 1000))
    return f"+{max(1, int(value * 1000))}"


WORKER_POOL_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""A worker pool's name: a DNS label (it names the pool's Deployment and its queues)."""


def check_worker_pool(value: object, where: str = "worker_pool") -> str | None:
    """A worker pool's name (a TaskQueue's ``spec.pools[].name``), or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not WORKER_POOL_NAME.fullmatch(value):
        raise ValueError(
            f"{where} must be a worker pool's name (a DNS label: 1-63 lower-case letters, "
            f"digits and '-', e.g. gpu), got {value!r}"
        )
    return value
