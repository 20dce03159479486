"""Retry policy: how many attempts, which exceptions retry, and the backoff between them.

A pure module (no Redis) so the backoff is unit-tested on its own. The defaults follow what
Cloud Tasks and Dramatiq users expect: failures retry with exponential backoff and jitter,
and a job that keeps failing ends in the dead-letter queue with its last error.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    """When and how a failed job runs again."""

    max_attempts: int = 3
    """Executions in all, the first included; 1 means never retry. Then the job is dead."""
    backoff_min: float = 1.0
    """Seconds before the first retry, and the floor of every later delay."""
    backoff_max: float = 300.0
    """Ceiling of any retry delay in seconds: a backoff never grows past five minutes."""
    backoff_factor: float = 2.0
    """Each retry waits this many times longer than the one before, before jitter."""
    jitter: bool = True
    """Spread each delay uniformly over [delay/2, delay] so retries of a burst don't align."""
    retry_on: tuple[type[BaseException], ...] = field(default=(Exception,))
    """Exceptions that retry. Others go straight to the dead-letter queue."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
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
