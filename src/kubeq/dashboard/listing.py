"""Which registered queue names the overview lists, one page at a time.

``kubeq:queues`` holds every name ever used and never shrinks (producers and workers
register a name once per process, so the dashboard never removes one: a producer that
registered it would not register it again). The overview lists only the names whose queue
holds something: a job in any of its sets, a worker, a pause or a rate limit (one EXISTS of
those keys per name, all in the queue's hash slot). A name found holding nothing is left off
(pruned from the listing, the poll and the chart history) and looked at again after
``DASHBOARD_RECHECK_SECONDS``; a name with keys is looked at again each time a page needs
it. A page is found by walking the sorted names from where it starts, so its cost follows
the page and the empty names skipped on the way, not the number ever registered.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import Any

from kubeq import defaults
from kubeq.store.jobfields import text
from kubeq.store.keys import QueueKeys, queues_key, validate_queue_name

CHUNK = 200
"""Names checked in one pipeline while a page is filled."""


def held_keys(keys: QueueKeys) -> list[str]:
    """The keys whose presence means a queue holds something a person would look at."""
    return [
        keys.ready,
        keys.delayed,
        keys.active,
        keys.dead,
        keys.deferred,
        keys.sleeping,
        keys.handoff,
        keys.workers,
        keys.busy,
        keys.paused,
        keys.rate_limit,
    ]


@dataclass
class Page:
    """One overview page: its names, where the neighbouring pages start, and counts."""

    names: list[str]
    registered: int
    after: str | None = None
    """The last name of this page when a later page exists (the next page starts after)."""
    before: str | None = None
    """The first name of this page when an earlier page exists."""
    invalid: list[str] = field(default_factory=list)


class Directory:
    """The registered names and what is known about each (redis.asyncio client)."""

    def __init__(
        self,
        client: Any,
        prefix: str = defaults.PREFIX,
        recheck_seconds: float = defaults.DASHBOARD_RECHECK_SECONDS,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.recheck_seconds = recheck_seconds
        self._empty_at: dict[str, float] = {}
        """Name -> when it was found holding nothing."""

    def empty(self, name: str) -> bool:
        at = self._empty_at.get(name)
        return at is not None and time.monotonic() - at < self.recheck_seconds

    async def names(self) -> tuple[list[str], list[str]]:
        """(valid names sorted, names that cannot be a queue)."""
        good, bad = [], []
        for name in sorted(text(n) for n in await self.client.smembers(queues_key(self.prefix))):
            try:
                good.append(validate_queue_name(name))
            except ValueError:
                bad.append(name)
        return good, bad

    async def _check(self, names: list[str]) -> dict[str, bool]:
        """Whether each name's queue holds something (one EXISTS per name, one pipeline)."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.exists(*held_keys(QueueKeys.of(name, self.prefix)))
        found = dict(zip(names, (int(n) > 0 for n in await pipe.execute()), strict=True))
        now = time.monotonic()
        for name, holds in found.items():
            if holds:
                self._empty_at.pop(name, None)
            else:
                self._empty_at[name] = now
        return found

    async def page(
        self,
        size: int = defaults.DASHBOARD_QUEUES_PAGE,
        after: str | None = None,
        before: str | None = None,
    ) -> Page:
        """Up to ``size`` names holding something: the first ones after ``after`` (or from
        the start), or the last ones before ``before``."""
        names, invalid = await self.names()
        known = set(names)
        self._empty_at = {n: t for n, t in self._empty_at.items() if n in known}
        if before is not None:
            end = bisect.bisect_left(names, before)
            order = names[:end][::-1]
        else:
            order = names[bisect.bisect_right(names, after) :] if after is not None else names
        chosen: list[str] = []
        i = 0
        while i < len(order) and len(chosen) <= size:
            # a page's worth at first; more when many names on the way hold nothing
            step = size + 1 if i == 0 else CHUNK
            chunk = [n for n in order[i : i + step] if not self.empty(n)]
            found = await self._check(chunk) if chunk else {}
            chosen += [name for name in chunk if found[name]]
            i += step
        more = len(chosen) > size
        chosen = chosen[:size]
        if before is not None:
            chosen.reverse()
            first_before = bool(chosen) and more
            return Page(
                names=chosen,
                registered=len(names) + len(invalid),
                after=chosen[-1] if chosen else None,
                before=chosen[0] if first_before else None,
                invalid=invalid,
            )
        return Page(
            names=chosen,
            registered=len(names) + len(invalid),
            after=chosen[-1] if more else None,
            before=chosen[0] if after is not None and chosen else None,
            invalid=invalid,
        )
