"""The gateway's bounds on callers: request size and rate (``Limits``), a token bucket per
key (``Buckets``), and ``Unauthenticated``, which bounds the TokenReviews that tokens the
gateway has not seen cost the API server: each refused token drains its source address's
bucket and the gateway-wide one, and while either is empty a token not already reviewed is
answered 429 without a review. Tokens already reviewed (accepted or refused) are answered
from the review cache and cost nothing."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from kubeq.gateway.kube import Refused


@dataclass
class Limits:
    max_body: int = 1 << 20
    """Bytes of a POST body at most (413 above)."""
    rate: float = 50.0
    """Requests per second per authenticated caller, sustained (429 above)."""
    burst: float = 100.0
    unauth_rate: float = 1.0
    """Refused tokens per second per source address, sustained (then 429, no review)."""
    unauth_burst: float = 20.0
    unauth_total_rate: float = 20.0
    """Refused tokens per second over all sources, sustained (then 429, no review)."""
    unauth_total_burst: float = 200.0


class Buckets:
    """A token bucket per key; at most ``size`` keys are remembered (the fullest are the
    ones forgotten: a forgotten key starts full, as it would after a pause)."""

    def __init__(self, rate: float, burst: float, size: int = 10_000) -> None:
        self.rate, self.burst, self.size = rate, burst, size
        self._state: dict[str, tuple[float, float]] = {}

    def _level(self, key: str, now: float) -> float:
        tokens, last = self._state.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token (0: it has one now)."""
        level = self._level(key, time.monotonic())
        return 0.0 if level >= 1 else (1 - level) / self.rate

    def take(self, key: str) -> float:
        """Take a token; the seconds until one would have been there (0: taken)."""
        now = time.monotonic()
        level = self._level(key, now)
        if level < 1:
            return (1 - level) / self.rate
        if key not in self._state and len(self._state) >= self.size:
            self._forget(now)
        self._state[key] = (level - 1, now)
        return 0.0

    def _forget(self, now: float) -> None:
        full = [k for k in self._state if self._level(k, now) >= self.burst]
        for key in full or list(self._state)[: self.size // 2]:
            del self._state[key]


def too_many(reason: str, wait: float) -> Refused:
    """A 429 whose Retry-After is ``wait`` rounded up to whole seconds."""
    return Refused(429, reason, retry_after=max(1, math.ceil(wait)))


class Unauthenticated:
    """Bounds the refused tokens per source address and in all (see the module)."""

    TOTAL = "*"

    def __init__(self, limits: Limits) -> None:
        self.per_source = Buckets(limits.unauth_rate, limits.unauth_burst)
        self.total = Buckets(limits.unauth_total_rate, limits.unauth_total_burst)

    def check(self, source: str) -> None:
        """Refused(429) while ``source`` (or everyone) has used up its refused tokens."""
        wait = self.per_source.wait(source)
        if wait:
            raise too_many(
                f"too many refused tokens from {source}; send a valid ServiceAccount token", wait
            )
        wait = self.total.wait(self.TOTAL)
        if wait:
            raise too_many("too many refused tokens in all; retry later", wait)

    def refused(self, source: str) -> None:
        """Count one refused token of ``source``."""
        self.per_source.take(source)
        self.total.take(self.TOTAL)
