"""Lease renewal: the heartbeat that keeps a worker's running jobs its own.

Every ``heartbeat_interval`` the worker renews the lease of each job it runs, one
heartbeat.lua call per queue in one pipeline, and publishes how busy it is. The script
answers with the jobs this worker no longer owns: taken over by another worker (the lease
expired before this renewal: this run's outcome will be refused, so the run is marked lost)
or aborted by a user (the caller stops the attempt). docs/architecture.md (Guarantees) says
why leases are fenced.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
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
    inflight: Mapping[tuple[str, str], Delivery],
) -> list[Delivery]:
    """Renew every running job's lease; mark the runs whose lease was taken over as lost;
    return the deliveries that were aborted (the caller stops them)."""
    busy = len(inflight)
    calls: list[ScriptCall] = []
    sent: dict[tuple[str, str], str] = {}
    lease_ms = int(settings.lease_seconds * 1000)
    for q in queues:
        owned = [
            (d.id, d.job.lease) for d in inflight.values() if d.job.queue is q and not d.settled
        ]
        sent.update(((q.name, job_id), lease) for job_id, lease in owned)
        keys, args = heartbeat_args(q, settings.worker_id, busy, lease_ms, owned)
        calls.append((script, keys, args))
    replies = await run_pipeline_async(client, calls)
    aborted: list[Delivery] = []
    for q, reply in zip(queues, replies, strict=True):
        for job_id, was_aborted in parse_heartbeat_reply(reply):
            key = (q.name, job_id)
            d = inflight.get(key)
            if d is None or d.settled:
                continue
            if was_aborted:
                aborted.append(d)
            # a fetch may have re-delivered it to us meanwhile: only the lease we sent is lost
            elif not d.lost and d.job.lease == sent.get(key):
                d.lost = True
                log.warning(
                    "job %s: lease lost (this worker was too slow to renew it); "
                    "another worker runs it now and this run's outcome will be refused",
                    d.id,
                )
    return aborted
