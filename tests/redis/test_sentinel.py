"""Redis Sentinel: a real master, two replicas and three sentinels on loopback; workers and the
client find the new master by themselves after a kill -9 of the old one.

Runs are counted OUTSIDE Redis (a file each execution appends to), so the figures hold even
for what Redis itself loses. The closing line prints them: sent, finished, lost, ran twice,
stall (the longest gap between two completions)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import qtasks
import redis

import kubeq
from tests.redis.helpers import tally_marks, wait_until
from tests.redis.workers import StartWorker
from tests.support.sentinel import SentinelTopology

JOBS = 5000


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[SentinelTopology]:
    t = SentinelTopology(tmp_path / "sentinel")
    t.start()
    yield t
    t.stop()


def test_sentinel_url_reaches_the_master(topology: SentinelTopology) -> None:
    app = kubeq.App(topology.url, wait_replicas=2)
    job = app.queue("s").enqueue(qtasks.add, 1, 2)  # WAIT 2: both replicas have it
    assert job.status() == "queued"
    assert app.redis.info("replication")["role"] == "master"
    assert app.redis.info("server")["tcp_port"] == topology.master()[1]
    app.close()


def test_async_enqueue_through_sentinel_waits_for_its_replicas(
    topology: SentinelTopology,
) -> None:
    warm = kubeq.App(topology.url, wait_replicas=2)
    warm.queue("s").enqueue(qtasks.add, 0, 0)  # the replicas are in sync
    warm.close()
    app = kubeq.App(topology.url, wait_replicas=2, wait_timeout=1.0)
    q = app.queue("s")

    async def main() -> list[object]:
        assert (await app.aredis.info("replication"))["role"] == "master"
        # both replicas confirm: many concurrent calls, each waits for its own writes
        jobs = await asyncio.gather(*(q.aenqueue(qtasks.add, i, 1) for i in range(20)))
        assert len({j.id for j in jobs}) == 20
        replicas = [topology.procs[port] for port in topology.replica_ports]
        for proc in replicas:
            proc.send_signal(signal.SIGSTOP)  # the replicas stop acknowledging
        try:
            return await asyncio.gather(
                *(q.aenqueue(qtasks.add, i, 2) for i in range(20)), return_exceptions=True
            )
        finally:
            for proc in replicas:
                proc.send_signal(signal.SIGCONT)
            await app.aclose()

    outcomes = asyncio.run(main())
    assert all(isinstance(o, kubeq.errors.NotReplicated) for o in outcomes), outcomes
    app.close()


def test_failover_mid_run_loses_no_acknowledged_job(
    topology: SentinelTopology,
    start_worker: StartWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marks = tmp_path / "marks"
    marks.touch()
    monkeypatch.setenv("KUBEQ_TEST_MARKS", str(marks))
    app = kubeq.App(topology.url, wait_replicas=1)
    workers = [
        start_worker("--queue", "ha", "--concurrency", "8", "--lease", "3", env_url=topology.url)
        for _ in range(3)
    ]
    jobs: list[kubeq.Job] = []
    for start in range(0, JOBS, 100):
        jobs += app.enqueue_many(
            [qtasks.mark.s(i).set(queue="ha") for i in range(start, start + 100)]
        )
    wait_until(lambda: len(marks.read_text().splitlines()) >= JOBS // 3, timeout=180)
    old = topology.kill_master()
    topology.wait_failover(old, timeout=180)
    deadline = time.monotonic() + 300
    results = {job.id: _result_across_failover(job, deadline) for job in jobs}
    lost, twice, stall = tally_marks(marks, JOBS)
    print(
        f"\nsentinel failover: {JOBS} sent, {len(results)} finished, {len(lost)} lost, "
        f"{twice} ran more than once, stall {stall:.1f} s"
    )
    assert sorted(results.values()) == list(range(JOBS))
    assert not lost
    for w in workers:
        assert w.proc.poll() is None  # recovered without a restart
    assert any("Redis is reachable again" in w.log() for w in workers)
    app.close()


def _result_across_failover(job: kubeq.Job, deadline: float) -> object:
    """A caller's view of a failover: until the sentinels agree on the promoted master, a
    call fails with a connection error (MasterNotFoundError); the caller tries again."""
    while True:
        try:
            return job.result(timeout=max(1.0, deadline - time.monotonic()))
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
