"""Which worker sweeps a queue's unfinished hand-offs: one at a time per queue, whatever the
size of its fleet.

The sweep (``handoff.sweep``) redoes the hand-offs and links a dead worker or caller left
unfinished. Any worker of the queue can do it, and one sweep per queue every few seconds is
enough, so the workers take turns: every ``SWEEP_SECONDS`` a worker offers to sweep each of
its queues with one ``SET {q}:sweeping <worker> NX PX`` per queue (one pipeline), and sweeps
the queues it won. A won claim holds the queue's other workers off for ``CLAIM_SECONDS``,
below ``SWEEP_SECONDS``, so a worker alone on a queue wins at each offer. A fleet of N
workers on one queue thus costs Redis N SETs and one sweep (its reads) per period, where each
worker sweeping on its own cost N sweeps.

What is swept, and when: an entry older than ``defaults.HANDOFF_GRACE_SECONDS`` is redone by
the next claim, at most ``CLAIM_SECONDS + SWEEP_SECONDS`` (and a heartbeat) after it aged,
when the worker that claimed before died holding the claim; within ``SWEEP_SECONDS`` (and a
heartbeat) otherwise.

A claim key that will not expire (written by hand, or its TTL lost) would hold every worker
off for ever, so every ``CHECK_EVERY``-th offer also reads the claim's TTL and deletes a key
that has none.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from kubeq.store import cluster as rediscluster
from kubeq.store.keys import QueueKeys

log = logging.getLogger("kubeq.worker")

SWEEP_SECONDS = 15.0
"""How often a worker offers to sweep its queues."""

CLAIM_SECONDS = 12.0
"""How long a won claim holds the queue's other workers off."""

CHECK_EVERY = 8
"""Every this many offers, a worker also checks that each claim key will expire."""


class SweepClaims:
    """One worker's offers to sweep its queues."""

    def __init__(self, worker_id: str) -> None:
        self._worker_id = worker_id
        self._offers = 0

    async def claim(self, client: Any, queues: Sequence[QueueKeys]) -> list[QueueKeys]:
        """Offer to sweep ``queues``; returns those this worker won (one round trip; two
        when a claim key without a TTL is found and deleted)."""
        check = self._offers % CHECK_EVERY == 0
        self._offers += 1
        pipe = client.pipeline(transaction=False)
        for q in queues:
            pipe.set(q.sweeping, self._worker_id, nx=True, px=int(CLAIM_SECONDS * 1000))
            if check:
                pipe.pttl(q.sweeping)
        replies = await pipe.execute(raise_on_error=False)
        step = 2 if check else 1
        won: list[QueueKeys] = []
        stuck: list[QueueKeys] = []
        for k, q in enumerate(queues):
            reply = replies[step * k]
            if isinstance(reply, BaseException):
                if rediscluster.is_outage(reply):
                    raise reply
                log.error("hand-off sweep of queue %s not claimed: %s", q.name, reply)
            elif reply:
                won.append(q)
            if check and replies[step * k + 1] == -1:  # a key that never expires
                stuck.append(q)
        if stuck:
            for q in stuck:
                log.warning(
                    "%s held no TTL, so no worker could sweep queue %s; deleting it",
                    q.sweeping,
                    q.name,
                )
            pipe = client.pipeline(transaction=False)
            for q in stuck:
                pipe.delete(q.sweeping)
            await pipe.execute()
        return won
