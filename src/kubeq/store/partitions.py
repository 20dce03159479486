"""Partitioned queues: one logical queue spread over N sub-queues, so one hot queue can
outgrow one Redis Cluster master.

Every key of a queue shares its ``{queue}`` hash tag, so a queue lives on one master and its
throughput ends there. A queue declared with ``partitions=N`` (``App(partitions={"orders":
4})``, a TaskQueue's ``spec.partitions``) is stored as N ordinary queues named
``orders#0`` .. ``orders#3``, each with its own hash tag and so, on a cluster, its own slot
(usually on different masters). Nothing below the enqueue plan knows about partitions: each
partition is a queue with its own scripts, leases, stats and dead letters.

- **Enqueue** (``Partitioner.route``): a call under a concurrency limit goes to
  ``crc32(its limit key) % N``: the slots of a key live in one queue's hash slot, so every
  job of the key must share a partition for the limit to hold. Otherwise a call with a
  ``partition_key`` (or a ``job_id``, so de-duplication still finds a live job) goes to
  ``crc32(key) % N``: the jobs of one key stay in order in one partition. Others go
  round-robin, from a random start per process. A callback or chain link has a job id
  derived from its parent's, so the worker that hands it off (``route`` again) and the
  caller's ``ChainResult`` place it in the same partition without asking Redis.
- **Workers** consume every partition (``expand``); the fetch router rotates the order of a
  queue's partitions from pass to pass (on one Redis, where they share one fetch call) or
  shares free slots between them (on a cluster, one call per slot), so none is starved.
- **Stats** add the partitions up (``combine``); the operator reads every partition and its
  scaling sums them as it sums queues.
- **What changes for users**: priority and FIFO order hold within a partition, not across
  them; a queue's rate limit holds per partition (N times the rate in all); every ``Queue``
  method (stats, pause, purge, rate limit, dead letters) acts on all partitions, and the
  ``kubeq`` command, which knows no App, finds a queue's partitions in the queue set
  (``registered``).
"""

from __future__ import annotations

import itertools
import random
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from kubeq import defaults
from kubeq.options import TaskOptions, limit_slot
from kubeq.store.keys import validate_queue_name

if TYPE_CHECKING:
    from kubeq.options import Call
    from kubeq.store.stats import QueueStats

SEP = "#"
"""Between a queue's name and its partition number: never in a name a user can choose
(``keys.validate_queue_name``), so a partition cannot collide with a queue."""


def check_partitions(name: str, n: object) -> int:
    """``n`` if it can be a queue's partition count, else ValueError naming the field."""
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= defaults.PARTITIONS_MAX:
        raise ValueError(
            f"partitions[{name!r}] must be a whole number from 1 to {defaults.PARTITIONS_MAX}, "
            f"got {n!r}"
        )
    return n


def names(queue: str, n: int) -> list[str]:
    """The queues that hold ``queue``'s jobs: itself when it has one partition."""
    return [queue] if n <= 1 else [f"{queue}{SEP}{i}" for i in range(n)]


def parent(queue: str) -> str:
    """The logical queue of a partition (``orders#3`` -> ``orders``); a queue is its own."""
    return queue.split(SEP, 1)[0]


class Partitioner:
    """An App's partitioned queues: where each call goes, what a worker consumes."""

    def __init__(self, partitions: Mapping[str, int] | None = None) -> None:
        self.partitions = {
            validate_queue_name(q): check_partitions(q, n) for q, n in (partitions or {}).items()
        }
        self._turns: dict[str, itertools.count[int]] = {}

    def count(self, queue: str) -> int:
        return self.partitions.get(queue, 1)

    def route(self, queue: str, call: Call, options: TaskOptions | None = None) -> str:
        """The partition of ``queue`` that receives ``call`` (``options``: its task's, for a
        concurrency limit the task declares)."""
        n = self.count(queue)
        if n <= 1:
            return queue
        slot = limit_slot(call, options or TaskOptions())
        if slot is not None:  # a key's slots are in one partition: all its jobs go there
            key: str | None = slot[0]
        elif call.partition_key is not None:
            key = call.partition_key
        else:
            key = call.job_id
        if key is not None:
            i = zlib.crc32(key.encode()) % n
        else:
            turn = self._turns.get(queue)
            if turn is None:  # many producers must not all start on partition 0
                turn = self._turns[queue] = itertools.count(random.randrange(n))
            i = next(turn) % n
        return f"{queue}{SEP}{i}"

    def expand(self, queues: Iterable[str]) -> list[str]:
        """Every queue a worker of ``queues`` consumes, partitions in place of their queue."""
        return [p for q in queues for p in names(q, self.count(q))]


def registered(queue: str, known: Iterable[str]) -> list[str]:
    """The partitions of ``queue`` among ``known`` queue names (the queue set), in partition
    order; empty when none is known (then ``queue`` is an ordinary queue)."""
    head = f"{queue}{SEP}"
    found = [q for q in known if q.startswith(head) and q[len(head) :].isdigit()]
    return sorted(found, key=lambda q: int(q[len(head) :]))


def families(queues: Sequence[str]) -> list[list[int]]:
    """Indices of ``queues`` grouped by logical queue (partitions of one queue together),
    in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(queues):
        groups.setdefault(parent(q), []).append(i)
    return list(groups.values())


def combine(queue: str, parts: Sequence[QueueStats]) -> QueueStats:
    """One logical queue's numbers from its partitions' (counts added, the oldest wait, any
    partition paused or rate-limited, workers merged)."""
    if len(parts) == 1:
        return replace(parts[0], queue=queue)
    first = parts[0]
    workers: dict[str, int] = {}
    for s in parts:
        for w, busy in s.workers.items():
            workers[w] = workers.get(w, 0) + busy
    return replace(
        first,
        queue=queue,
        backlog=sum(s.backlog for s in parts),
        in_flight=sum(s.in_flight for s in parts),
        delayed=sum(s.delayed for s in parts),
        dead=sum(s.dead for s in parts),
        deferred=sum(s.deferred for s in parts),
        sleeping=sum(s.sleeping for s in parts),
        expired=sum(s.expired for s in parts),
        oldest_ready_age=max(s.oldest_ready_age for s in parts),
        paused=any(s.paused for s in parts),
        rate_limited=any(s.rate_limited for s in parts),
        rate_limit=sum(s.rate_limit for s in parts),
        fair_keys=sum(s.fair_keys for s in parts),
        debounced=sum(s.debounced for s in parts),
        singleton_keys=sum(s.singleton_keys for s in parts),
        batches_forming=sum(s.batches_forming for s in parts),
        batched_items=sum(s.batched_items for s in parts),
        workers=workers,
    )
