"""Is this worker still consuming? The numbers behind ``/healthz`` and the outage backoff.

Kubernetes restarts a pod whose liveness probe fails, so the probe must fail only when a
restart can help: the loop stopped turning, or Redis has been out of reach for longer than
``--stall-seconds`` (the worker adds: no heartbeat renewed the leases for that long, or a
background loop ended). Outages are logged once per retry with their duration and retried
with an exponential backoff capped at 5 s.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("kubeq.worker")


class Vitals:
    """When the loop last turned and last reached Redis, and the current outage if any."""

    def __init__(self) -> None:
        now = time.monotonic()
        self.last_tick = now
        self.last_round_trip = now
        self.last_beat = now
        """When a heartbeat last renewed the leases (the worker's health() reads it)."""
        self.down_since: float | None = None
        self.backoff = 0.1

    def tick(self) -> None:
        """The loop started a pass."""
        self.last_tick = time.monotonic()

    def round_trip(self) -> None:
        """A command reached Redis and came back."""
        self.last_round_trip = time.monotonic()

    def beat(self) -> None:
        """A heartbeat renewed the leases."""
        self.last_beat = time.monotonic()

    def redis_up(self) -> None:
        if self.down_since is not None:
            log.warning(
                "Redis is reachable again after %.1f s; consuming",
                time.monotonic() - self.down_since,
            )
            self.down_since = None
        self.backoff = 0.1

    def redis_failed(self, exc: BaseException, url: str) -> float:
        """Log the outage; returns the seconds to wait before the next try."""
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            self.backoff = 0.1
        wait = self.backoff
        log.error(
            "Redis unreachable at %s (%s: %s); down for %.1f s, retrying in %.1f s",
            url,
            type(exc).__name__,
            exc,
            now - self.down_since,
            wait,
        )
        self.backoff = min(5.0, self.backoff * 2)
        return wait

    def health(self, stall: float) -> tuple[bool, str]:
        """(ok, message): not ok once the loop or Redis has been silent for ``stall`` s."""
        now = time.monotonic()
        if now - self.last_tick > stall:
            return False, f"worker loop stalled: no pass for {now - self.last_tick:.0f} s"
        if self.down_since is not None and now - self.down_since > stall:
            return False, f"cannot reach Redis for {now - self.down_since:.0f} s"
        if now - self.last_round_trip > stall:
            return False, f"no round trip to Redis for {now - self.last_round_trip:.0f} s"
        return True, "ok"
