"""A partitioned queue on one redis-server: spread by enqueue, consumed whole by a worker
that names only the queue (its tasks' App declares the partitions), and counted as one."""

from __future__ import annotations

import collections
import json

import qtasks
import redis

import kubeq
from kubeq import defaults
from kubeq.options import RateLimit
from kubeq.store.keys import QueueKeys, queues_key
from tests.redis.helpers import max_running, wait_until
from tests.redis.test_cli import run
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


def _queues(r: redis.Redis) -> set[str]:
    return {q.decode() for q in r.smembers(queues_key(defaults.PREFIX))}


def test_callbacks_and_chain_links_of_a_partitioned_queue_run_in_its_partitions(
    redis_url: str, start_worker: StartWorker, r: redis.Redis
) -> None:
    app = kubeq.App(redis_url, partitions={"pq": 3})
    parents = app.enqueue_many(
        [qtasks.part_add.s(i, 1).set(on_success=qtasks.part_note.s("cb")) for i in range(8)]
    )
    # before the hand-off, `kubeq job` shows each callback in the partition it will run in
    (pending,) = parents[0].edges().children
    assert pending.status == "not enqueued" and pending.queue.startswith("pq#")
    start_worker("--queue", "pq", "--concurrency", "4")
    assert [p.result(timeout=30) for p in parents] == [i + 1 for i in range(8)]
    wait_until(lambda: r.llen("test:notes:cb") == 8, timeout=20, what="8 callbacks ran")
    notes = sorted(n.decode().split() for n in r.lrange("test:notes:cb", 0, -1))
    assert sorted(int(result) for result, _ in notes) == list(range(1, 9))
    assert {queue for _, queue in notes} <= {"pq#0", "pq#1", "pq#2"}
    (handed_off,) = parents[0].edges().children
    assert (handed_off.queue, handed_off.id, handed_off.status) == (
        pending.queue,
        pending.id,
        "finished",
    )
    # a chain's handle knows where each link runs before it exists
    chained = kubeq.chain(
        qtasks.part_add.s(1, 2), qtasks.part_add.s(10), qtasks.part_add.s(100)
    ).delay(app)
    assert all(job.queue.startswith("pq#") for job in chained.jobs)
    assert chained.result(timeout=20) == 113
    assert chained.status() == "finished"
    assert "pq" not in _queues(r)  # nothing went to the bare name, which no worker reads
    app.close()


def test_a_concurrency_limit_holds_across_the_partitions_of_a_queue(
    redis_url: str, start_worker: StartWorker, r: redis.Redis
) -> None:
    app = kubeq.App(redis_url, partitions={"pq": 3})
    jobs = app.enqueue_many(
        [qtasks.part_limited.s("cl", 0.1) for _ in range(9)]
        + [qtasks.part_keyed.s("ck", f"k{i % 2}", 0.1) for i in range(12)]
    )
    start_worker("--queue", "pq", "--concurrency", "8")
    for job in jobs:
        job.result(timeout=60)
    assert max_running(r.lrange("test:span:cl:all", 0, -1)) == 1
    for key in ("k0", "k1"):
        assert max_running(r.lrange(f"test:span:ck:{key}", 0, -1)) == 1, key
    app.close()


def test_a_concurrency_limit_holds_per_queue_for_a_key_used_on_two_queues(
    redis_url: str, start_worker: StartWorker, r: redis.Redis
) -> None:
    """The stated limit (docs/limits.md): a key's N slots are per queue; two queues each
    hold N (no script may touch two queues' hash slots)."""
    app = kubeq.App(redis_url)
    jobs = app.enqueue_many(
        qtasks.part_keyed.s(f"two-{q}", "k", 0.1).set(queue=q) for q in ("qa", "qb") * 6
    )
    start_worker("--queue", "qa", "--queue", "qb", "--concurrency", "8")
    for job in jobs:
        job.result(timeout=60)
    for q in ("qa", "qb"):
        assert max_running(r.lrange(f"test:span:two-{q}:k", 0, -1)) == 1, q
    app.close()


def test_purge_rate_limit_and_dead_letters_act_on_every_partition(
    redis_url: str, start_worker: StartWorker, r: redis.Redis
) -> None:
    app = kubeq.App(redis_url, partitions={"pq": 3})
    q = app.queue("pq")
    app.enqueue_many([qtasks.part_add.s(i, 1) for i in range(9)])
    assert q.purge() == 9
    assert q.stats().backlog == 0
    q.set_rate_limit("5/s")
    assert q.rate_limit() == RateLimit.parse("5/s")
    assert all(r.hget(QueueKeys.of(p).rate_limit, "n") == b"5" for p in q.partitions)
    assert q.stats().rate_limit == 15  # per partition: N times the rate in all
    q.set_rate_limit(None)
    assert q.rate_limit() is None and q.stats().rate_limit == 0
    failed = app.enqueue_many([qtasks.part_fail.s(str(i)) for i in range(6)])
    assert len({j.queue for j in failed}) == 3
    worker = start_worker("--queue", "pq")
    wait_until(lambda: q.stats().dead == 6, timeout=30, what="6 dead letters")
    worker.stop()
    assert sorted(q.dead_letter_ids()) == sorted(j.id for j in failed)
    assert len(q.dead_letter_ids(limit=4)) == 4
    assert {(i.queue, i.id) for i in q.dead_letters()} == {(j.queue, j.id) for j in failed}
    assert q.requeue_dead([failed[0].id, failed[1].id]) == 2
    assert q.stats().backlog == 2
    assert q.purge_dead() == 4
    assert q.purge() == 2
    assert q.stats().dead == 0
    app.close()


def test_the_cli_acts_on_every_partition_of_a_queue(
    redis_url: str, start_worker: StartWorker, r: redis.Redis
) -> None:
    """`kubeq` knows no App's partitions: it finds a queue's partitions in the queue set."""
    app = kubeq.App(redis_url, partitions={"pq": 3})
    q = app.queue("pq")
    app.enqueue_many([qtasks.part_add.s(i, 1) for i in range(9)])
    out = run(redis_url, "purge", "pq", "--yes")
    assert out.returncode == 0, out.stderr
    assert "purged 9 jobs" in out.stdout
    out = run(redis_url, "limit", "pq", "2/s")
    assert out.returncode == 0, out.stderr
    assert "at most 2/s per partition (3 partitions)" in out.stdout
    assert q.stats().rate_limit == 6
    assert run(redis_url, "limit", "pq").stdout == "pq: 2/s per partition (3 partitions)\n"
    assert run(redis_url, "limit", "pq", "--clear").returncode == 0
    assert q.stats().rate_limit == 0
    assert run(redis_url, "pause", "pq").returncode == 0
    assert q.is_paused() and all(r.exists(QueueKeys.of(p).paused) for p in ("pq#0", "pq#1", "pq#2"))
    assert run(redis_url, "resume", "pq").returncode == 0
    assert not q.stats().paused
    failed = app.enqueue_many([qtasks.part_fail.s(str(i)) for i in range(6)])
    worker = start_worker("--queue", "pq")
    wait_until(lambda: q.stats().dead == 6, timeout=30, what="6 dead letters")
    worker.stop()
    out = run(redis_url, "dlq", "list", "pq", "-o", "json")
    assert out.returncode == 0, out.stderr
    listed = {(d["queue"], d["id"]) for d in json.loads(out.stdout)}
    assert listed == {(j.queue, j.id) for j in failed}
    out = run(redis_url, "dlq", "requeue", "-q", "pq", failed[0].id)
    assert "re-queued 1" in out.stdout, out.stdout + out.stderr
    out = run(redis_url, "dlq", "purge", "-q", "pq", "--all")
    assert "purged 5" in out.stdout, out.stdout + out.stderr
    assert q.stats().dead == 0 and q.stats().backlog == 1
    app.close()
