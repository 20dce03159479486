"""Redis Cluster: 3 real masters and 3 replicas on loopback (tests/support/cluster.py).

What a user of ``redis+cluster://`` observes: jobs of 20 queues spread over the slots (so over
the three masters) are enqueued, run by workers consuming all 20 and give their results; the
stats of all 20 come back per node; and a busy queue's slot resharded to another master, then
a master killed -9 and failed over, in the middle of a run, lose nothing. Runs are counted
OUTSIDE Redis (a file each execution appends to); the closing line prints sent, finished,
lost, ran twice and the stall (the longest gap between two completions).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest
import qtasks
import redis

import kubeq
from kubeq import defaults
from kubeq.errors import NotReplicated
from kubeq.store import connections
from kubeq.store.cluster import is_cluster, is_outage, slot_of
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, run_pipeline
from kubeq.store.stats import read_stats_async
from kubeq.store.wire import fetch_args
from tests.redis.helpers import tally_marks, wait_until
from tests.redis.workers import StartWorker
from tests.support.cluster import ClusterTopology

QUEUES = [f"c{i}" for i in range(20)]
SOAK_JOBS = 10_000


@pytest.fixture
def cluster(cluster_topology: ClusterTopology) -> ClusterTopology:
    cluster_topology.flush()
    return cluster_topology


def _masters_of(t: ClusterTopology, queues: list[str]) -> set[int]:
    return {t.owner(slot_of(QueueKeys.of(q).base)) for q in queues}


def test_twenty_queues_over_three_masters_run_and_give_results(
    cluster: ClusterTopology, start_worker: StartWorker
) -> None:
    assert len(_masters_of(cluster, QUEUES)) == 3  # the queues really are spread
    app = kubeq.App(cluster.url)
    assert is_cluster(app.redis)
    jobs = app.enqueue_many(
        [qtasks.add.s(i, n).set(queue=q) for n, q in enumerate(QUEUES) for i in range(10)]
    )
    args = [a for q in QUEUES for a in ("--queue", q)]
    start_worker(*args, "--concurrency", "8", env_url=cluster.url)
    start_worker(*args, "--concurrency", "8", env_url=cluster.url)
    results = [job.result(timeout=60) for job in jobs]
    assert results == [i + n for n in range(len(QUEUES)) for i in range(10)]
    stats = {s.queue: s for s in kubeq.read_stats(app.redis, QUEUES)}
    assert sorted(stats) == sorted(QUEUES)
    assert all(s.backlog == 0 and s.in_flight == 0 for s in stats.values())
    app.close()


def test_cli_stats_and_burst_worker_on_a_cluster(
    cluster: ClusterTopology, start_worker: StartWorker
) -> None:
    app = kubeq.App(cluster.url)
    app.enqueue_many([qtasks.add.s(i, 1).set(queue=q) for q in QUEUES[:6] for i in range(5)])
    from click.testing import CliRunner

    from kubeq.cli import cli

    out = CliRunner().invoke(cli, ["--redis-url", cluster.url, "stats", "--output", "json"])
    assert out.exit_code == 0, out.output
    shown = {row["queue"]: row["backlog"] for row in json.loads(out.output)}
    assert shown == dict.fromkeys(QUEUES[:6], 5)  # every registered queue, read per node
    w = start_worker(
        *[a for q in QUEUES[:6] for a in ("--queue", q)], "--burst", env_url=cluster.url
    )
    assert w.wait(60) == 0
    assert all(s.backlog == 0 for s in kubeq.read_stats(app.redis, QUEUES[:6]))
    app.close()


def test_one_partitioned_queue_spreads_over_the_masters(
    cluster: ClusterTopology, start_worker: StartWorker
) -> None:
    app = kubeq.App(cluster.url, partitions={"hot": 6})
    q = app.queue("hot")
    assert len(_masters_of(cluster, q.partitions)) >= 2  # one queue, more than one master
    jobs = app.enqueue_many([qtasks.add.s(i, 0).set(queue="hot") for i in range(120)])
    assert {j.queue for j in jobs} == set(q.partitions)  # round-robin over the partitions
    keyed = app.enqueue_many(
        [qtasks.add.s(i, 1).set(queue="hot", partition_key="customer-7") for i in range(10)]
    )
    assert len({j.queue for j in keyed}) == 1
    assert q.stats().backlog == 130
    start_worker(*[a for p in q.partitions for a in ("--queue", p)], env_url=cluster.url)
    assert [j.result(timeout=60) for j in jobs] == list(range(120))
    assert [j.result(timeout=60) for j in keyed] == list(range(1, 11))
    total = q.stats()
    assert (total.backlog, total.in_flight) == (0, 0)
    app.close()


def test_async_stats_of_twenty_queues_through_the_operators_client(
    cluster: ClusterTopology,
) -> None:
    app = kubeq.App(cluster.url)
    app.enqueue_many([qtasks.add.s(n, 0).set(queue=q) for n, q in enumerate(QUEUES)])
    app.queue(QUEUES[3]).pause()

    async def read() -> list[kubeq.QueueStats]:
        client = connections.async_client(cluster.url)  # what the operator's RedisSource makes
        try:
            return await read_stats_async(client, QUEUES)
        finally:
            await client.aclose()

    stats = asyncio.run(read())
    assert [s.queue for s in stats] == QUEUES
    assert [s.backlog for s in stats] == [1] * len(QUEUES)
    assert [s.paused for s in stats] == [q == QUEUES[3] for q in QUEUES]
    app.close()


def test_the_dashboard_reads_a_cluster(cluster: ClusterTopology, start_worker: StartWorker) -> None:
    from kubeq.dashboard.data import Reader
    from kubeq.dashboard.hub import Hub, View

    app = kubeq.App(cluster.url)
    jobs = app.enqueue_many([qtasks.add.s(n, 0).set(queue=q) for n, q in enumerate(QUEUES)])
    start_worker("--queue", QUEUES[0], env_url=cluster.url)  # publishes its worker document
    assert jobs[0].result(timeout=30) == 0

    async def poll() -> dict[str, object]:
        client = connections.async_client(cluster.url)
        try:
            hub = Hub(client, interval=0.05)
            await asyncio.sleep(2.5)  # the worker's first heartbeat publishes it
            return await hub.refresh(View(queues=tuple(QUEUES), workers=True))
        finally:
            await client.aclose()

    message = asyncio.run(poll())
    rows = {row["queue"]: row for row in message["queues"]}  # type: ignore[attr-defined]
    assert sorted(rows) == sorted(QUEUES)
    assert [rows[q]["backlog"] for q in QUEUES] == [0] + [1] * (len(QUEUES) - 1)
    assert any(QUEUES[0] in w["queues"] for w in message["workers"])  # type: ignore[attr-defined]
    reader = Reader(app)
    assert [r.id for r in reader.waiting(QUEUES[5], 0)] == [jobs[5].id]
    found = reader.find(jobs[5].id, QUEUES[5])
    assert found is not None and found.status == "queued"
    app.close()


def test_wait_replicas_on_a_cluster(cluster: ClusterTopology) -> None:
    app = kubeq.App(cluster.url, wait_replicas=1, wait_timeout=1.0)
    jobs = app.enqueue_many([qtasks.add.s(n, 0).set(queue=q) for n, q in enumerate(QUEUES)])
    assert all(job.status() == "queued" for job in jobs)

    async def enqueue_async() -> list[kubeq.Job]:
        try:
            return await app.aenqueue_many([qtasks.add.s(1, 1).set(queue=q) for q in QUEUES])
        finally:
            await app.aclose()

    assert len(asyncio.run(enqueue_async())) == len(QUEUES)
    masters = set(cluster.master_ports())
    replicas = [p for p in cluster.procs if p not in masters]
    for port in replicas:
        cluster.procs[port].send_signal(signal.SIGSTOP)  # no replica acknowledges any more
    try:
        with pytest.raises(NotReplicated):
            app.enqueue_many([qtasks.add.s(2, 2).set(queue=q) for q in QUEUES])
    finally:
        for port in replicas:
            cluster.procs[port].send_signal(signal.SIGCONT)
    app.close()


def test_no_script_runs_on_a_half_moved_queue(
    cluster: ClusterTopology, start_worker: StartWorker
) -> None:
    """While a queue's slot is being resharded, a script that builds a job key from the
    queue's base (as every kubeq script does) could find that key already moved: on the
    source it fails half-way, on the target it reads nothing. Here every declared queue key
    stays on the source and only one job's hash has moved: cancelling that job must not
    answer "no such job" (what the script would conclude); Redis refuses it until the
    migration ends, and then the job is cancelled."""
    app = kubeq.App(cluster.url)
    q = app.queue("mig")
    keys = QueueKeys.of("mig")
    failed = q.enqueue(qtasks.not_retried)  # -> dead at its first failure
    assert start_worker("--queue", "mig", "--burst", env_url=cluster.url).wait(60) == 0
    assert failed.status() == "failed"
    jobs = app.enqueue_many([qtasks.add.s(i, 0).set(queue="mig") for i in range(5)])
    app.enqueue_many([qtasks.add.s(9, 9).set(queue="mig", delay=3600)])  # -> delayed
    # lease one job through the worker's own seam: active, workers and busy exist
    fkeys, fargs = fetch_args("test-worker", 1, 600_000, 0, defaults.WORKER_TTL_MS, [keys])
    run_pipeline(app.redis, [(LUA["fetch"], fkeys, fargs)])
    q.pause()
    assert all(app.redis.exists(k) for k in keys.script_keys)  # wake too (no one consumed it)
    target = next(j for j in jobs if j.status() == "queued")
    slot = slot_of(keys.base)
    dst = next(p for p in cluster.master_ports() if p != cluster.owner(slot))
    migration = cluster.begin_migration(slot, dst)
    migration.src.execute_command(
        "MIGRATE", "127.0.0.1", dst, "", 0, 10000, "KEYS", keys.job(target.id)
    )
    with pytest.raises(Exception) as refused:
        target.cancel()
    assert is_outage(refused.value), refused.value  # retryable, not "no such job"
    migration.finish()
    assert target.cancel() is True
    assert target.status() == "cancelled"
    assert q.stats().backlog == 3  # 5 - the leased one - the cancelled one (paused)
    app.close()


def test_reshard_and_failover_mid_run_lose_nothing(
    cluster: ClusterTopology,
    start_worker: StartWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marks = tmp_path / "marks"
    marks.touch()
    monkeypatch.setenv("KUBEQ_TEST_MARKS", str(marks))
    queues = QUEUES[:8]
    app = kubeq.App(cluster.url)
    args = [a for q in queues for a in ("--queue", q)]
    workers = [
        start_worker(*args, "--concurrency", "8", "--lease", "5", env_url=cluster.url)
        for _ in range(3)
    ]
    jobs: list[kubeq.Job] = []
    per_call = 100
    for start in range(0, SOAK_JOBS, per_call):
        jobs += app.enqueue_many(
            [
                qtasks.mark.s(i).set(queue=queues[i % len(queues)])
                for i in range(start, start + per_call)
            ]
        )
    wait_until(lambda: len(marks.read_text().splitlines()) >= SOAK_JOBS // 5, timeout=180)
    # 1. reshard the slot of the busiest queue to another master while it runs
    busy = queues[0]
    slot = slot_of(QueueKeys.of(busy).base)
    src = cluster.owner(slot)
    dst = next(p for p in cluster.master_ports() if p != src)
    moved = cluster.move_slot(slot, dst, batch=10, pause=0.01)
    assert cluster.owner(slot) == dst and moved > 0
    wait_until(lambda: len(marks.read_text().splitlines()) >= SOAK_JOBS // 2, timeout=180)
    # 2. kill -9 a master that serves some of the queues; its replica takes over
    victim = next(iter(_masters_of(cluster, queues[1:]) - {dst}), dst)
    cluster.kill_master(victim)
    try:
        deadline = time.monotonic() + 300
        results = {job.id: _result_across_failover(job, deadline) for job in jobs}
    finally:
        cluster.revive(victim)  # whole again for the next test (it rejoins as a replica)
    lost, twice, stall = tally_marks(marks, SOAK_JOBS)
    print(
        f"\ncluster reshard ({moved} keys of slot {slot}) + failover: {SOAK_JOBS} sent, "
        f"{len(results)} finished, {len(lost)} lost, {twice} ran more than once, "
        f"stall {stall:.1f} s"
    )
    assert sorted(results.values()) == list(range(SOAK_JOBS))
    assert not lost
    for w in workers:
        assert w.proc.poll() is None  # recovered without a restart
    app.close()


def _result_across_failover(job: kubeq.Job, deadline: float) -> object:
    """A caller's view of a failover: until the replica is promoted, a call to that master's
    slots fails with a connection or cluster error; the caller tries again."""
    while True:
        try:
            return job.result(timeout=max(1.0, deadline - time.monotonic()))
        except (redis.ConnectionError, redis.exceptions.ClusterError, redis.RedisClusterException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
