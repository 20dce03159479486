"""A worker's presence is not its leases: a worker forgotten as live still holds its jobs.

A fetch forgets workers whose presence (the queue's workers set: fetch, heartbeat, idle beat)
is older than ``WORKER_TTL_MS``, e.g. a worker whose idle beat came late while it held a job.
That only stops counting it as live (stats, the operator's scaling); its jobs stay its own
until their lease expires (docs/architecture.md, Guarantees), so another worker's fetch
delivers none of them again and the holder's outcome is applied.
"""

from __future__ import annotations

import qtasks
import redis

import kubeq
from kubeq import defaults
from kubeq.store.keys import QueueKeys
from kubeq.store.wire import FETCH_HEADER

LEASE_MS = 30_000


def test_a_worker_forgotten_as_live_keeps_its_leased_job(app: kubeq.App, r: redis.Redis) -> None:
    q, keys = app.queue("presence"), QueueKeys.of("presence")
    fetch = app.scripts.fetch

    def args(worker: str) -> list[object]:
        return [worker, 1, LEASE_MS, 0, defaults.WORKER_TTL_MS, 1, keys.base]

    job = q.enqueue_call(qtasks.add, (2, 3))
    a = fetch(keys=keys.script_keys, args=args("A"))
    lease = a[FETCH_HEADER + 2]
    r.zadd(keys.workers, {"A": 0})  # A's presence aged out long ago; its lease is fresh
    other = q.enqueue_call(qtasks.add, (1, 1))
    b = fetch(keys=keys.script_keys, args=args("B"))
    assert r.zscore(keys.workers, "A") is None, "A was not forgotten as live"
    assert b[FETCH_HEADER + 1] == other.id.encode(), "B was given A's job, not the one queued"
    info = job.info()
    assert info is not None and str(info.status) == "active" and info.deliveries == 1
    flags = app.scripts.ack(
        keys=keys.script_keys,
        args=[keys.base, 1, job.id, lease, "finished", "5"],
    )
    assert [int(f) for f in flags] == [1]
    assert job.result(timeout=5) == 5
