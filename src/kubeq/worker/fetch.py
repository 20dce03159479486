"""How a worker consuming several queues fetches them: one ``fetch.lua`` call per hash slot.

On a single Redis (or Sentinel) all the worker's queues go into ONE fetch call, in their
priority order, as they always did. On Redis Cluster a script may only touch one slot, and
each queue is one slot (its ``{queue}`` hash tag), so the queues are grouped by slot
(``rediscluster.slot_groups``) and the pass sends one fetch call per group, all in the same
pipeline (redis-py's cluster pipeline: one round trip per node, in parallel).

The pass's free slots (``want``) are shared between the groups: evenly among the groups whose
last fetch left jobs ready (all groups when none did or at start), the remainder going round
from pass to pass, so no queue is starved and a worker does not lease more jobs than it has
free slots. Groups given no share still get a call with ``want`` 0: it promotes their due
delayed jobs, reclaims their expired leases and reports what is ready, which decides the next
pass's shares. Priority across queues therefore holds within a slot, not across slots.

A partitioned queue (``partitions``) is several queues: on a cluster usually several slots,
shared as above; on one Redis they share the one call, and the order of that queue's
partitions rotates from pass to pass, so each is served first in turn.

The idle wait is split the same way: one BLPOP per group on its wake lists (a BLPOP over
several slots is refused by a cluster), the first token wakes the worker.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from kubeq.store.cluster import slot_groups
from kubeq.store.keys import QueueKeys
from kubeq.store.partitions import families
from kubeq.store.scripts import ScriptCall
from kubeq.store.wire import FetchedJob, FetchReply, fetch_args, parse_fetch_reply


class FetchRouter:
    """The fetch calls of one pass and their merged reply, for one worker's queues."""

    def __init__(self, queues: Sequence[QueueKeys], cluster: bool) -> None:
        self.cluster = cluster
        self.use(queues)

    def use(self, queues: Sequence[QueueKeys]) -> None:
        """Fetch from ``queues`` from now on (a retired version's worker: its pinned ones)."""
        self.queues = list(queues)
        self.groups: list[list[QueueKeys]] = (
            [[self.queues[i] for i in g] for g in slot_groups([q.base for q in self.queues])]
            if self.cluster
            else [self.queues]
        )
        self._families = [f for f in families([q.name for q in self.queues]) if len(f) > 1]
        self._pass = 0
        self._ready = [1] * len(self.groups)
        """Jobs each group left ready at its last fetch (1 = not known yet)."""
        self._turn = 0

    def shares(self, want: int) -> list[int]:
        """``want`` split over the groups (see the module's docstring); sums to ``want``."""
        n = len(self.groups)
        if n == 1:
            return [want]
        eligible = [g for g in range(n) if self._ready[g] > 0] or list(range(n))
        out = [0] * n
        base, extra = divmod(want, len(eligible))
        start = self._turn % len(eligible)
        for k, g in enumerate(eligible):
            out[g] = base + (1 if (k - start) % len(eligible) < extra else 0)
        self._turn += extra or 0
        return out

    def calls(
        self,
        script: Any,
        worker_id: str,
        want: int,
        lease_ms: int,
        busy: int,
        worker_ttl_ms: int,
        seq: int = 0,
        order: str = "",
        acked: Collection[str] = (),
    ) -> list[ScriptCall]:
        """The pass's fetch calls, one per group, in group order. ``seq`` numbers the fetch
        (its jobs are logged in transit until the reply is read); each call checks that the
        acks of its queues named in ``acked``, sent before it under ``order``, ran first."""
        self._rotate()
        out: list[ScriptCall] = []
        for group, share in zip(self.groups, self.shares(want), strict=True):
            mine = [i for i, q in enumerate(group) if q.name in acked]
            keys, args = fetch_args(
                worker_id, share, lease_ms, busy, worker_ttl_ms, group, seq, order, mine
            )
            out.append((script, keys, args))
        return out

    def _rotate(self) -> None:
        """On one Redis a partitioned queue's partitions share one fetch call, served in
        order: start each pass at the next partition, so each is first in turn."""
        if self.cluster or not self._families:
            return
        self._pass += 1
        order = list(self.queues)
        for fam in self._families:
            k = self._pass % len(fam)
            for slot, src in zip(fam, fam[k:] + fam[:k], strict=True):
                order[slot] = self.queues[src]
        self.groups = [order]

    def merge(self, results: Sequence[Any]) -> tuple[FetchReply, BaseException | None]:
        """The replies of ``calls`` as one FetchReply (ready jobs summed, the soonest wait),
        and the first error among them. Jobs leased by the calls that succeeded are in the
        reply even when another call failed: the caller runs them, then handles the error."""
        jobs: list[FetchedJob] = []
        remaining, wait, error = 0, -1, None
        for g, (group, raw) in enumerate(zip(self.groups, results, strict=True)):
            if isinstance(raw, BaseException):
                error = error or raw
                continue
            reply = parse_fetch_reply(raw, group)
            self._ready[g] = reply.remaining
            jobs.extend(reply.jobs)
            remaining += reply.remaining
            if reply.wait_ms >= 0 and (wait < 0 or reply.wait_ms < wait):
                wait = reply.wait_ms
        return FetchReply(remaining, jobs, wait), error

    def wake_keys(self) -> list[list[str]]:
        """The wake lists to block on, one BLPOP per list of keys."""
        return [[q.wake for q in group] for group in self.groups]
