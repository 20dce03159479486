"""Lease renewal: the heartbeat that keeps a worker's running jobs its own.

Every ``heartbeat_interval`` the worker renews the lease of each job it holds, one
heartbeat.lua call per queue in one pipeline, and publishes how busy it is; the jobs of a
fetch whose reply has not been read yet are renewed from the transit log (``answered``).
A renewal that comes after the lease expired still holds a job nobody was given since. The
script answers with the jobs this worker no longer holds: delivered to another worker or
ended (this run's outcome would be refused: the caller stops it) or aborted by a user (the
caller stops it too). docs/architecture.md (Guarantees) says why leases are fenced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import ScriptCall, run_pipeline_async
from kubeq.store.wire import heartbeat_args, parse_heartbeat_reply
from kubeq.worker.delivery import Delivery
from kubeq.worker.settings import WorkerSettings

log = logging.getLogger("kubeq.worker")


async def renew(
    client: Any,
    script: Any,
    queues: Sequence[QueueKeys],
    settings: WorkerSettings,
    held: Sequence[Delivery],
    busy: int,
    answered: int = -1,
) -> tuple[list[Delivery], list[Delivery]]:
    """Renew the lease of every held delivery (running, waiting to start, or ended with its
    outcome not yet recorded); return the running deliveries that were aborted and those
    whose lease this worker no longer holds (the caller stops both)."""
    calls: list[ScriptCall] = []
    sent: dict[tuple[str, str], Delivery] = {}
    lease_ms = int(settings.lease_seconds * 1000)
    for q in queues:
        mine = [d for d in held if d.job.queue is q]
        sent.update((d.key, d) for d in mine)
        owned = [(d.id, d.job.lease) for d in mine]
        keys, args = heartbeat_args(q, settings.worker_id, busy, lease_ms, owned, answered)
        calls.append((script, keys, args))
    replies = await run_pipeline_async(client, calls)
    aborted: list[Delivery] = []
    lost: list[Delivery] = []
    for q, reply in zip(queues, replies, strict=True):
        for job_id, was_aborted in parse_heartbeat_reply(reply):
            d = sent.get((q.name, job_id))
            if d is None or d.settled:
                continue  # ended here: its outcome decides
            if was_aborted:
                aborted.append(d)
            elif not d.lost:
                d.lost = True
                lost.append(d)
                log.warning(
                    "job %s: lease lost (this worker was too slow to renew it, and the job "
                    "was delivered again or has ended): stopping this run, whose outcome "
                    "would be refused",
                    d.id,
                )
    return aborted, lost
