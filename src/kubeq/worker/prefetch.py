"""How many jobs a worker leases beyond its free slots: only as many as finish in a blink.

A worker that fetches exactly its free slots makes a Redis round trip for nearly every job
when jobs are short (at ``--concurrency 4``, a no-op job cost a round trip of its own).
Celery answers with a fixed prefetch (4 x concurrency by default), which strands
queued jobs behind long ones on a busy worker while other workers idle. Here the extra room
follows the jobs' measured run time: the worker keeps at most as many leased-but-waiting jobs
as its slots finish within ``budget_ms`` (50 ms by default), capped at
``defaults.PREFETCH_MAX``. Until it has timed a job, and for jobs of a second, it
prefetches nothing.

A job waiting here is leased like a running one: the heartbeat renews it, ``kubeq stats``
counts it in flight, an abort reaches it, and on SIGTERM it is handed back at once (it never
started, so no attempt is counted). When the jobs turn out slower than the average said, what
waits here is handed back too, for other workers (``stale``): when a run just took
``STALE_BUDGETS`` budgets (200 ms) or more, or when no run has ended for that long while a job
waited that long. Measured, not estimated: a loaded CPU that slows every short job keeps the
buffer (handing it back would not help, other workers share the CPU), and one slow outlier
only sends back what waits at its end.

The same measurements say when to refill (``refill_at``). While enough jobs wait here the
loop holds its next round trip to gather acknowledgements into one; it must not hold so long
that the slots run dry before the refill's reply is back, or the worker and Redis take turns
instead of working at once. So the round trip goes when what waits would last no longer than
``REFILL_MARGIN`` round trips at the rate jobs are taken (both measured, moving averages), or
when no more than half the room waits, whichever comes first.
"""

from __future__ import annotations

import collections
import time
from typing import Generic, TypeVar

from kubeq import defaults

__all__ = ["Prefetch"]

T = TypeVar("T")

_WEIGHT = 0.1
"""Weight of the newest run in the moving average of run times."""
REFILL_MARGIN = 1.5
"""The loop refills while the jobs that wait here would still last this many round trips."""
STALE_BUDGETS = 4
"""A prefetched job that has waited this many budgets (200 ms by default) means the slots are
slower than the prefetch assumed: what waits goes back to the queue."""


class Prefetch(Generic[T]):
    """The moving average of run times and the jobs leased ahead of a free slot."""

    def __init__(self, concurrency: int, budget_ms: float = defaults.PREFETCH_MS) -> None:
        self.concurrency = concurrency
        self.budget = max(0.0, budget_ms) / 1000
        self.stale_after = STALE_BUDGETS * max(self.budget, 0.05)
        """Seconds: a run this long, or this long with no run ended, means the slots are slow."""
        self.mean: float | None = None
        """Seconds per run (exponential moving average), None before the first."""
        self.last_end = 0.0
        """When the last run ended (monotonic)."""
        self.last_slow = False
        """The last run took ``STALE_BUDGETS`` budgets or more."""
        self.waiting: collections.deque[tuple[float, T]] = collections.deque()
        """Leased jobs that wait for a slot, oldest first, with when they were leased."""
        self.rtt: float | None = None
        """Seconds from a round trip's send to its reply read (moving average)."""
        self.rate: float | None = None
        """Jobs leased per second between round trips that leased some (moving average)."""
        self._mark: tuple[float, int] | None = None
        """When the last round trip ended and how many jobs had been leased by then."""

    def hold(self, item: T) -> None:
        """Keep a leased job until a slot frees."""
        self.waiting.append((time.monotonic(), item))

    def take(self) -> T | None:
        """The oldest waiting job, or None."""
        return self.waiting.popleft()[1] if self.waiting else None

    def stale(self) -> list[T]:
        """Every waiting job, removed, when the slots turned out slow (see the module's
        docstring); else nothing."""
        if not self.waiting or not self.slow(self.waiting[0][0]):
            return []
        return self.drop_all()

    def slow(self, waiting_since: float) -> bool:
        """Whether a job that has waited for a slot since ``waiting_since`` (monotonic) means
        the slots turned out slow: the last run took ``STALE_BUDGETS`` budgets, or no run
        ended for that long while the job waited."""
        if self.last_slow:
            return True
        last_end = self.last_end
        since = time.monotonic() - (last_end if last_end > waiting_since else waiting_since)
        return since >= self.stale_after

    def drop_all(self) -> list[T]:
        """Every waiting job, removed."""
        items = [item for _, item in self.waiting]
        self.waiting.clear()
        return items

    def observe(self, seconds: float) -> None:
        """A run took ``seconds`` (from its start to its end, on this worker)."""
        self.last_end = time.monotonic()
        self.last_slow = seconds >= self.stale_after
        if self.mean is None:
            self.mean = seconds
        else:
            self.mean += _WEIGHT * (seconds - self.mean)

    def round_trip(self, seconds: float, leased: int) -> None:
        """A round trip took ``seconds``; ``leased`` jobs have been leased in all since the
        worker started."""
        self.rtt = seconds if self.rtt is None else self.rtt + _WEIGHT * (seconds - self.rtt)
        now = time.monotonic()
        mark, self._mark = self._mark, (now, leased)
        if mark is None or leased <= mark[1] or now <= mark[0]:
            return  # nothing taken since (idle): the last rate still says what a burst does
        rate = (leased - mark[1]) / (now - mark[0])
        self.rate = rate if self.rate is None else self.rate + _WEIGHT * (rate - self.rate)

    def refill_at(self) -> int:
        """Jobs waiting here at or below which the next round trip goes at once: half the
        room, or what is taken during ``REFILL_MARGIN`` round trips, whichever is more."""
        half = self.room() // 2
        if self.rtt is None or self.rate is None:
            return half
        return max(half, int(self.rate * self.rtt * REFILL_MARGIN))

    def room(self) -> int:
        """Jobs to lease beyond the free slots now: what the slots get through within the
        budget at the measured rate, at most ``defaults.PREFETCH_MAX``; 0 when off or unknown."""
        if self.budget <= 0 or self.mean is None:
            return 0
        per_run = max(self.mean, 1e-6)
        return min(defaults.PREFETCH_MAX, int(self.concurrency * self.budget / per_run))
