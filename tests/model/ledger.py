"""What the intersections machine knows about each job, and the checks it makes of Redis.

Each job the machine enqueued, and each follow-up it expects (a callback or chain link,
derived from its parent's id once the parent ends), is an ``Entry``. After every step
``Ledger.observe`` reads every entry's status from Redis and checks the move from the last
one: a live job may end once (finished, failed, cancelled, aborted, expired, or purged:
deleted while waiting); an ended job never comes back or ends again; a job never vanishes
while live; an ended one vanishes only when its result TTL ran out. The transitions are
the model: the machine's rules say what may happen, the ledger counts what did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from kubeq.options import Call
from kubeq.store.keys import QueueKeys
from kubeq.workflows.callbacks import callback_id
from tests.model import known

LIVE = frozenset({"queued", "scheduled", "active", "waiting", "deferred", "sleeping", "batched"})
ENDED = frozenset({"finished", "failed", "cancelled", "aborted", "expired", "purged"})


@dataclass
class Entry:
    id: str
    queue: str
    """The logical queue (a partitioned queue's name, not a partition)."""
    call: Call
    partition: str | None = None
    """Where it lives, once known."""
    status: str | None = None
    """Last status seen (None: never seen, or gone)."""
    seen: bool = False
    ends: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    """depends_on (a chord's members for its callback)."""
    follow_ups: int = 0
    """How many of its ends had their callbacks added to the ledger: a dead letter requeued
    and ended again has the follow-ups of its new end, whatever the old end's were."""
    expired: bool = False
    """Its result TTL ran out (the machine's results_expire step)."""
    purged: bool = False
    resent: int = 0
    """Times a bulk resend re-created it after its end (tolerated while KNOWN_ITEM_4)."""
    chord_of: list[list[str]] | None = None
    """A chord's callback: its members' (partition, id), as the worker reads them."""
    parent: str | None = None
    """A follow-up: the job whose end made it."""
    revived: int = 0
    """Times it came back that way."""
    aborted: bool = False
    """An abort was acknowledged while it was live."""


class Ledger:
    def __init__(self, r: redis.Redis, partitions: dict[str, int]) -> None:
        self.r = r
        self.partitions = partitions
        self.entries: dict[str, Entry] = {}
        self.held_back: set[str] = set()
        """Queues under their own rate limit: their jobs may wait for later."""

    def where(self, queue: str) -> list[str]:
        n = self.partitions.get(queue, 1)
        return [queue] if n <= 1 else [f"{queue}#{i}" for i in range(n)]

    def add(self, job_id: str, queue: str, call: Call, partition: str | None = None) -> Entry:
        e = self.entries.get(job_id)
        if e is None:
            e = self.entries[job_id] = Entry(job_id, queue, call, partition)
        return e

    def live(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.status in LIVE]

    # -- reading Redis ------------------------------------------------------------------------

    def _read(self, entries: list[Entry]) -> list[tuple[str | None, str | None]]:
        """(status, partition) of each entry; status None when no partition holds it."""
        pipe = self.r.pipeline(transaction=False)
        spots = []
        for e in entries:
            places = [e.partition] if e.partition else self.where(e.queue)
            spots.append(places)
            for p in places:
                pipe.hget(QueueKeys.of(p).job(e.id), "status")
        replies = iter(pipe.execute())
        out: list[tuple[str | None, str | None]] = []
        for places in spots:
            found: tuple[str | None, str | None] = (None, None)
            for p in places:
                raw = next(replies)
                if raw is not None:
                    assert found[0] is None, f"one job id in two partitions: {places}"
                    found = (raw.decode(), p)
            out.append(found)
        return out

    def observe(self) -> None:
        """Read every entry and check its move; add follow-ups of parents that ended."""
        todo = list(self.entries.values())
        while todo:
            added: list[Entry] = []
            for e, (status, partition) in zip(todo, self._read(todo), strict=True):
                self._move(e, status, partition)
                if e.follow_ups < len(e.ends):
                    e.follow_ups = len(e.ends)
                    if e.ends[-1] == "finished":
                        added += self._follow_ups(e, "on_success", e.call.on_success)
                    if e.ends[-1] == "failed":
                        added += self._follow_ups(e, "on_failure", e.call.on_failure)
            todo = added

    def _follow_ups(self, parent: Entry, kind: str, call: Call | None) -> list[Entry]:
        if call is None:
            return []
        cid = callback_id(parent.id, kind)
        if cid in self.entries:
            return []
        entry = self.add(cid, call.queue or parent.queue, call)
        entry.parent = parent.id
        return [entry]

    def _move(self, e: Entry, status: str | None, partition: str | None) -> None:
        before = e.status
        if partition is not None:
            if e.partition is not None:
                assert e.partition == partition, f"{e.id} moved from {e.partition} to {partition}"
            e.partition = partition
        if status is None:
            if before in LIVE:
                assert e.purged, f"job {e.id} vanished while {before}"
                e.ends.append("purged")
                e.status = "purged"
            elif before in ENDED and before != "purged":
                assert e.expired, f"job {e.id} vanished after it ended {before}, TTL not over"
                e.status = None
            return
        assert status in LIVE or status in ENDED, f"job {e.id} has the status {status!r}"
        if not e.seen:
            e.seen = True
            e.status = status
            if status in ENDED:
                e.ends.append(status)
            return
        if before == status:
            return
        if before in LIVE and status in ENDED:
            e.ends.append(status)
        elif before in LIVE and status in LIVE:
            pass
        elif status in ENDED:
            raise AssertionError(f"job {e.id} ended {before}, then ended again {status}")
        elif known.KNOWN_ITEM_4 and e.resent:
            e.resent -= 1
            e.revived += 1
            e.aborted = False  # a new job under the old id: its abort was the old one's
        else:
            raise AssertionError(f"job {e.id} ended {before or 'and expired'}, then {status}")
        if status == "finished" and e.aborted:
            raise AssertionError(f"job {e.id} finished after its abort was acknowledged")
        e.status = status

    # -- the checks ---------------------------------------------------------------------------

    def check_ends(self) -> None:
        """Every job ended at most once (twice after a tolerated resend)."""
        for e in self.entries.values():
            allowed = 1 + e.revived
            assert len(e.ends) <= allowed, f"job {e.id} ended {len(e.ends)} times: {e.ends}"

    def check_stats(self, names: list[str], stats: list[Any]) -> None:
        """``read_stats`` counts what the ledger sees, queue by queue (partitions apart)."""
        count: dict[tuple[str, str], int] = {}
        held = {
            n: {m.decode() for m in self.r.zrange(QueueKeys.of(n).active, 0, -1)} for n in names
        }
        for e in self.entries.values():
            # an aborted job's attempt keeps its lease (in flight) until it says it stopped
            stopping = e.status == "aborted" and e.id in held.get(e.partition or "?", ())
            if e.status in LIVE or e.status == "failed" or stopping:
                key = (e.partition or "?", "active" if stopping else e.status)
                count[key] = count.get(key, 0) + 1
        for name, s in zip(names, stats, strict=True):
            got = {
                "waiting to run": s.backlog + s.delayed + s.sleeping,
                "in flight": s.in_flight,
                "deferred": s.deferred,
                "dead": s.dead,
            }
            want = {
                "waiting to run": count.get((name, "queued"), 0)
                + count.get((name, "scheduled"), 0)
                + count.get((name, "sleeping"), 0),
                "in flight": count.get((name, "active"), 0),
                "deferred": count.get((name, "deferred"), 0),
                "dead": count.get((name, "failed"), 0),
            }
            if got != want:
                k = QueueKeys.of(name)
                sets = {
                    m.decode(): self.entries[m.decode()].status
                    if m.decode() in self.entries
                    else "?"
                    for key in (k.ready, k.delayed, k.active, k.deferred, k.dead)
                    for m in self.r.zrange(key, 0, -1)
                }
                odd = {i: self.entries[i] for i, st in sets.items() if st is None}
                raise AssertionError(
                    f"stats of {name}: {got}; the jobs say {want} (its sets hold {sets}; {odd})"
                )

    def check_settled(self) -> None:
        """After a drain: nothing is left to run, nothing waits for parents that ended, and
        every follow-up of an ended parent was enqueued."""
        for e in self.entries.values():
            if e.parent is not None and not e.seen:
                parent = self.entries[e.parent]
                if not (known.KNOWN_ITEM_13 and parent.expired):
                    raise AssertionError(f"follow-up {e.id} of {parent.id} was never enqueued")
            if e.status not in LIVE:
                continue
            if e.status == "scheduled" and e.call.rate_limit is not None:
                continue  # parked by its rate limit, for later
            if e.status == "sleeping":
                continue  # a durable sleep or wait: for its time or its signal
            if (
                e.status in ("queued", "scheduled", "waiting", "batched")
                and e.queue in self.held_back
            ):
                continue  # its queue's rate limit lets it start later
            if e.status == "deferred":
                parents = [self.entries[p] for p in e.parents]
                if any(p.status in LIVE for p in parents):
                    continue
                if known.KNOWN_ITEM_12 and any(p.purged for p in parents):
                    continue
                if known.KNOWN_ITEM_13 and any(p.expired for p in parents):
                    continue
                ended = {p.id: p.ends for p in parents}
                raise AssertionError(f"{e.id} stays deferred; its parents ended: {ended}")
            raise AssertionError(f"{e.id} is left {e.status} after the fleet drained")

    def snapshot(self) -> dict[str, str | None]:
        return {e.id: e.status for e in self.entries.values()}

    def check_chord_results(self, e: Entry, results: list[Any]) -> None:
        """A chord's callback starts with the result of every member (all finished)."""
        assert e.chord_of is not None
        for (_, member), result in zip(e.chord_of, results, strict=True):
            m = self.entries[member]
            if result is None and not (known.KNOWN_ITEM_11 and m.expired):
                raise AssertionError(f"chord {e.id} got None for {member}, which ended {m.ends}")
