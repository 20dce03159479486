"""Retry policy: how many attempts, which exceptions retry, and the backoff between them.

A pure module (no Redis) so the backoff and the retry-or-bury decision (``decide``) are
unit-tested on their own, like the operator's scaling policy. The defaults follow what
Cloud Tasks and Dramatiq users expect: failures retry with exponential backoff and jitter,
and a job that keeps failing ends in the dead-letter queue with its last error.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from kubeq import defaults
from kubeq.errors import Retry
from kubeq.outcomes import Settlement


@dataclass(frozen=True)
class RetryPolicy:
    """When and how a failed job runs again."""

    max_attempts: int = defaults.MAX_ATTEMPTS
    """Executions in all, the first included; 1 means never retry. Then the job is dead."""
    backoff_min: float = defaults.BACKOFF_MIN
    """Seconds before the first retry, and the floor of every later delay."""
    backoff_max: float = defaults.BACKOFF_MAX
    """Ceiling of any retry delay in seconds: a backoff never grows past five minutes."""
    backoff_factor: float = defaults.BACKOFF_FACTOR
    """Each retry waits this many times longer than the one before, before jitter."""
    jitter: bool = True
    """Spread each delay uniformly over [delay/2, delay] so retries of a burst don't align."""
    retry_on: tuple[type[BaseException], ...] = field(default=(Exception,))
    """Exceptions that retry. Others go straight to the dead-letter queue."""

    def __post_init__(self) -> None:
        if (
            not isinstance(self.max_attempts, int)
            or isinstance(self.max_attempts, bool)
            or not 1 <= self.max_attempts <= 1_000_000
        ):
            raise ValueError(
                f"max_attempts must be a whole number from 1 to 1000000, got {self.max_attempts!r}"
            )
        numbers = (self.backoff_min, self.backoff_max, self.backoff_factor)
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in numbers
        ):
            raise ValueError(
                f"backoff_min, backoff_max and backoff_factor must be finite numbers, got "
                f"{self.backoff_min!r}, {self.backoff_max!r}, {self.backoff_factor!r}"
            )
        if self.backoff_min < 0 or self.backoff_max < self.backoff_min:
            raise ValueError(
                f"backoff must satisfy 0 <= backoff_min <= backoff_max, "
                f"got min={self.backoff_min} max={self.backoff_max}"
            )
        if self.backoff_factor < 1:
            raise ValueError(f"backoff_factor must be >= 1, got {self.backoff_factor}")
        if not isinstance(self.retry_on, tuple) or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in self.retry_on
        ):
            raise ValueError(
                f"retry_on must be a tuple of exception classes, e.g. (ConnectionError,), "
                f"got {self.retry_on!r}"
            )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        exponent = min(max(0, attempt - 1), 64)  # beyond 2**64 the cap decides anyway
        raw = self.backoff_min * self.backoff_factor**exponent
        capped = min(self.backoff_max, raw)
        if self.jitter:
            capped = (rng or random).uniform(capped / 2, capped)
        return max(self.backoff_min, min(self.backoff_max, capped))

    def should_retry(self, attempt: int, exc: BaseException) -> bool:
        """True when failed attempt ``attempt`` (1-based) with ``exc`` earns another run."""
        return attempt < self.max_attempts and isinstance(exc, self.retry_on)


def decide(
    policy: RetryPolicy,
    attempt: int,
    exc: BaseException,
    traceback: str = "",
    rng: random.Random | None = None,
) -> Settlement:
    """How failed attempt number ``attempt`` (1-based) with ``exc`` ends: another attempt
    after a backoff, or the dead letters with a reason a person can act on.

    ``raise kubeq.Retry(delay=...)`` asks for another attempt (its own delay, else the
    backoff) whatever ``retry_on`` says; other exceptions retry when ``retry_on`` matches and
    attempts remain. A BaseException that is not an Exception (SystemExit, KeyboardInterrupt
    raised by task code) never retries.
    """
    error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, Retry):
        if attempt < policy.max_attempts:
            delay = exc.delay if exc.delay is not None else policy.delay(attempt, rng)
            return Settlement.retry(error, traceback, delay)
        reason = f"retry requested on the last attempt ({attempt} of {policy.max_attempts})"
        return Settlement.failed(error, reason, traceback)
    if isinstance(exc, Exception) and policy.should_retry(attempt, exc):
        return Settlement.retry(error, traceback, policy.delay(attempt, rng))
    if attempt >= policy.max_attempts:
        reason = f"failed {attempt} of {policy.max_attempts} attempts: {error}"
    else:
        reason = f"{type(exc).__name__} is not retried by this task: {error}"
    return Settlement.failed(error, reason, traceback)
