"""A partitioned queue on one redis-server: spread by enqueue, consumed whole by a worker
that names only the queue (its tasks' App declares the partitions), and counted as one."""

from __future__ import annotations

import collections

import qtasks

import kubeq
from tests.redis.workers import StartWorker


def test_a_worker_of_a_partitioned_queue_consumes_every_partition(
    redis_url: str, start_worker: StartWorker
) -> None:
    app = kubeq.App(redis_url, partitions={"pq": 3})
    jobs = app.enqueue_many([qtasks.part_add.s(i, 1).set(queue="pq") for i in range(60)])
    spread = collections.Counter(j.queue for j in jobs)
    assert spread == {"pq#0": 20, "pq#1": 20, "pq#2": 20}
    assert app.queue("pq").stats().backlog == 60
    app.queue("pq").pause()
    assert app.queue("pq").stats().paused
    app.queue("pq").resume()
    worker = start_worker("--queue", "pq", "--concurrency", "2")
    assert [j.result(timeout=60) for j in jobs] == [i + 1 for i in range(60)]
    assert "pq#0, pq#1, pq#2" in worker.log()
    assert app.queue("pq").stats().backlog == 0
    app.close()
