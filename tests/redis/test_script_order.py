"""A flushed script cache keeps a worker's round trip in order: acks before the fetch.

The worker sends, in one pipeline, the outcomes of the jobs that ended and a fetch. After a
SCRIPT FLUSH (or a restarted Redis) another client may have loaded the fetch script again
before this pipeline runs: its acks are answered NOSCRIPT while its fetch runs. The fetch
must not run ahead of them (it could take back a job whose outcome is still on its way, and
run it again): it refuses, and both are sent again in order. Driven through the worker's
own round trip, on a real redis-server.
"""

from __future__ import annotations

import asyncio

import leasetasks
import pytest
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA
from kubeq.worker import Worker, WorkerSettings

Q = "default"


def test_acks_answered_noscript_still_run_before_the_fetch_sent_after_them(
    app: kubeq.App, r: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEQ_REDIS_URL", redis_url)  # the task's own client (leasetasks.r)
    monkeypatch.setattr(leasetasks, "_r", None)
    job = app.enqueue_many([leasetasks.progress_when_told.s("o")])[0]
    keys = QueueKeys.of(Q)

    async def main() -> tuple[bool, int]:
        settings = WorkerSettings(
            "leasetasks", [Q], redis_url=redis_url, handle_signals=False, concurrency=1
        )
        worker = Worker(settings, dict(leasetasks.app.tasks))
        try:
            await worker._round_trip(fetch=True)  # leases the job and starts it
            assert (Q, job.id) in worker.inflight
            r.set("test:go:o", 1)
            for _ in range(600):  # the job ends; its outcome waits for the next round trip
                if worker._acks:
                    break
                await asyncio.sleep(0.05)
            assert worker._acks, "the job did not end"
            # the script cache is flushed, and another client loads the fetch script again;
            # the job's lease has expired meanwhile (a fetch running first would take it)
            r.script_flush()
            r.script_load(LUA["fetch"].script)
            r.zadd(keys.active, {job.id: 0})
            await worker._round_trip(fetch=True)
            return (Q, job.id) in worker.inflight, int(r.llen("test:runs:o"))
        finally:
            for d in list(worker.inflight.values()):
                if d.runner is not None:
                    d.runner.cancel()
            await worker._redis.aclose()
            worker.executor.shutdown()

    delivered_again, runs = asyncio.run(main())
    assert not delivered_again, "the fetch ran before the ack sent ahead of it"
    assert job.status() == "finished"
    assert job.result(timeout=5) == "done o"
    assert runs == 1
