"""Tags and the search index, as a user finds jobs: finished jobs by task and tag (library
and `kubeq jobs`), a task's default tags, bad tags refused naming the field, and index
entries that go with their jobs' records (pruned when read, aged out on write, keys that
expire), on a real Redis (and a Redis Cluster) with a real worker."""

from __future__ import annotations

import json
import re
import time

import pytest
import qtasks

import kubeq
from kubeq.store import ids, jobindex
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker, run


@pytest.mark.also_redis_cluster
def test_finished_jobs_are_found_by_task_and_tags(
    redis_url: str, app: kubeq.App, start_worker: StartWorker
) -> None:
    q = app.queue("tagged")
    vip = [q.enqueue_call(qtasks.add, (i, 1), tags=["vip", "customer:42"]) for i in range(3)]
    plain = [q.enqueue_call(qtasks.add, (i, 2)) for i in range(4)]
    other = q.enqueue_call(qtasks.worker_pid, tags=["vip"])
    start_worker("--queue", "tagged")
    for j in [*vip, *plain, other]:
        j.result(timeout=60)

    got = q.find("finished", tags=["vip"])
    assert sorted(j.id for j in got.jobs) == sorted(j.id for j in [*vip, other])
    assert got.complete and {j.tags for j in got.jobs if j.id != other.id} == {
        ("vip", "customer:42")
    }
    both = q.find("finished", task="qtasks.add", tags=["vip"])
    assert sorted(j.id for j in both.jobs) == sorted(j.id for j in vip)
    adds = q.find("finished", task="qtasks.add", since=3600)
    assert len(adds.jobs) == 7 and adds.jobs[0].id == plain[-1].id  # newest first
    assert len(q.find("any").jobs) == 8 and q.find("cancelled").jobs == []
    assert q.find("queued", tags=["vip"]).jobs == []

    cmd = ["jobs", "-q", "tagged", "--status", "finished", "--tag", "customer:42", "-o", "json"]
    rows = json.loads(run(redis_url, *cmd).stdout)
    assert sorted(r["id"] for r in rows) == sorted(j.id for j in vip)
    assert all(r["tags"] == ["vip", "customer:42"] and r["status"] == "finished" for r in rows)
    names = run(redis_url, "jobs", "-q", "tagged", "--task", "qtasks.worker_pid", "-o", "name")
    assert names.stdout.split() == [other.id], names.stderr


def test_a_tasks_default_tags_and_bad_tags(app: kubeq.App) -> None:
    @app.task(queue="deftags", tags=["billing"])
    def invoice(n: int) -> int:
        return n

    default = invoice.delay(1)
    own = invoice.apply_async((2,), tags=["retry-run"])
    q = app.queue("deftags")
    # one call of several tasks: each task's index, and every task listed for the merge
    mixed = q.enqueue_many([kubeq.Call(f"t.k{i % 3}", (i,), queue="deftags") for i in range(6)])
    for j in mixed:
        j.cancel()
    assert sorted(j.id for j in q.find("cancelled").jobs) == sorted(j.id for j in mixed)
    assert len(q.find("cancelled", task="t.k1").jobs) == 2
    # an ended job's id enqueued again: two entries in the index, one job found
    q.enqueue_call("t.again", job_id="again-1").cancel()
    q.enqueue_call("t.again", job_id="again-1")
    assert [(j.id, j.status) for j in q.find(task="t.again").jobs] == [("again-1", "queued")]
    assert [j.id for j in q.find("queued", tags=["billing"]).jobs] == [default.id]
    assert [j.id for j in q.find(tags=["retry-run"]).jobs] == [own.id]
    assert [j.id for j in q.find("queued", task=invoice.name).jobs] == [own.id, default.id]

    with pytest.raises(ValueError, match=r"tags must be a list of short strings"):
        q.enqueue_call("t.x", tags="vip")
    with pytest.raises(ValueError, match=r"tags: 'a b' is not a tag"):
        q.enqueue_call("t.x", tags=["a b"])
    with pytest.raises(ValueError, match=r"tags: at most 16 tags"):
        q.enqueue_call("t.x", tags=[f"t{i}" for i in range(17)])
    with pytest.raises(ValueError, match=r"tags: 7 is not a tag"):
        app.task(tags=[7])(lambda: None)
    with pytest.raises(ValueError, match=r"status must be one of"):
        q.find("done")
    assert q.stats().backlog == 3  # nothing of a refused call was enqueued


def test_index_entries_go_with_their_records(
    app: kubeq.App, r: object, start_worker: StartWorker
) -> None:
    redis = app.redis
    keys = QueueKeys.of("shortlived", app.prefix)
    q = app.queue("shortlived")
    jobs = [q.enqueue_call(qtasks.add, (i, i), result_ttl=1, tags=["brief"]) for i in range(5)]
    assert redis.llen(keys.ix_task("qtasks.add")) == 5 and redis.llen(keys.ix_tag("brief")) == 5
    assert 0 < redis.pttl(keys.ix_tag("brief")) <= 7 * 86_400_000  # the key expires unused
    start_worker("--queue", "shortlived")
    for j in jobs:
        j.result(timeout=60)
    wait_until(lambda: not any(redis.exists(keys.job(j.id)) for j in jobs), timeout=30,
               what="the records' result TTL to pass")  # fmt: skip

    found = q.find(tags=["brief"])
    assert found.jobs == [] and found.pruned == 5
    assert redis.llen(keys.ix_tag("brief")) == 0
    assert q.find(task="qtasks.add").pruned == 5 and redis.llen(keys.ix_task("qtasks.add")) == 0

    # an entry older than the index keeps (7 days) goes on the next write of its index
    redis.lpush(keys.ix_tag("brief"), "1000:ancient")
    fresh = q.enqueue_call(qtasks.add, (1, 1), tags=["brief"])
    assert [jobindex.parse(e)[1] for e in redis.lrange(keys.ix_tag("brief"), 0, -1)] == [fresh.id]


def test_a_partitioned_queue_is_searched_in_every_partition(redis_url: str) -> None:
    app = kubeq.App(redis_url, partitions={"pj": 3})
    q = app.queue("pj")
    jobs = [
        q.enqueue_call("t.ship", (i,), partition_key=f"k{i}", tags=["wave:1"]) for i in range(9)
    ]
    for j in jobs[:4]:
        j.cancel()
    assert len({j.queue for j in jobs}) > 1  # the jobs are spread over partitions
    found = q.find("cancelled", tags=["wave:1"])
    assert sorted((j.id, j.queue) for j in found.jobs) == sorted((j.id, j.queue) for j in jobs[:4])
    assert len(q.find(task="t.ship").jobs) == 9
    app.close()


def test_debounced_singleton_and_batched_jobs_are_found_by_task(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    tasks = qtasks.app.tasks
    debounced, single, *items = app.enqueue_many(
        [
            tasks["flowtasks.reindex"].s("doc", 1),
            tasks["flowtasks.sync_replace"].s("acct", "a"),
            *(tasks["flowtasks.insert_events"].s(i) for i in range(3)),
        ]
    )
    start_worker()
    for j in [debounced, single, *items]:
        j.result(timeout=60)
    q = app.queue("default")
    for task, jobs in [
        ("flowtasks.reindex", [debounced]),
        ("flowtasks.sync_replace", [single]),
        ("flowtasks.insert_events", items),
    ]:
        found = q.find("finished", task=task)
        assert sorted(j.id for j in found.jobs) == sorted(j.id for j in jobs), task


def test_an_index_is_looked_after_at_most_once_a_second(app: kubeq.App, r: object) -> None:
    """A steady stream of enqueues costs each index an RPUSH and a PTTL per write: its aged
    entries, its cap and its expiry are looked after by the first write a second after the
    last time (INFO commandstats counts the commands scripts run)."""
    redis = app.redis
    keys = QueueKeys.of("stream", app.prefix)
    q = app.queue("stream")
    first = q.enqueue_call(qtasks.add, (0, 0), tags=["steady"])  # a new index: looked after
    redis.config_resetstat()
    t0 = time.monotonic()
    later = [q.enqueue_call(qtasks.add, (i, i), tags=["steady"]) for i in range(1, 101)]
    took = time.monotonic() - t0
    stats = redis.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    looked_after = calls.get("pexpire", 0)  # each index's and ix:tasks' expiry, once a care
    assert looked_after <= 3 * (took + 1), (looked_after, took, calls)
    assert calls["rpush"] >= 200 and calls.get("pttl") == 200  # two indexes a write
    # every job is in both indexes, in order
    ids = [j.id for j in [first, *later]]
    for k in (keys.ix_task("qtasks.add"), keys.ix_tag("steady")):
        assert [jobindex.parse(e)[1] for e in redis.lrange(k, 0, -1)] == ids
        assert 0 < redis.pttl(k) <= 7 * 86_400_000

    # a second on (its expiry set back by two), the next write drops an aged entry
    redis.lpush(keys.ix_tag("steady"), "1000:ancient")
    redis.pexpire(keys.ix_tag("steady"), 7 * 86_400_000 - 2000)
    redis.zadd(keys.ix_tasks, {"qtasks.add": 0})
    redis.pexpire(keys.ix_task("qtasks.add"), 7 * 86_400_000 - 2000)
    last = q.enqueue_call(qtasks.add, (0, 1), tags=["steady"])
    entries = [jobindex.parse(e)[1] for e in redis.lrange(keys.ix_tag("steady"), 0, -1)]
    assert entries == [*ids, last.id]
    assert redis.pttl(keys.ix_tag("steady")) > 7 * 86_400_000 - 2000
    assert float(redis.zscore(keys.ix_tasks, "qtasks.add") or 0) > 0  # its last care


def test_an_entry_is_the_bare_id_when_the_id_says_when_it_was_made(app: kubeq.App) -> None:
    """A generated id is its own entry (it says when it was made); an id of the user's, or one
    shaped like a generated id that was made too long ago, keeps ``<enqueue ms>:``. Every
    kind is found by ``since``, and an old bare entry ages out on the next write."""
    redis = app.redis
    keys = QueueKeys.of("bare", app.prefix)
    q = app.queue("bare")
    made = q.enqueue_call("t.b", (1,))
    mine = q.enqueue_call("t.b", (2,), job_id="order-17")
    stale_id = ids.new_job_id()
    time.sleep(0.5)
    between = time.time()  # jobs enqueued after this are within since=time.time() - between
    time.sleep(0.5)
    # an id made "long ago": its time moved back by two minutes, the rest kept
    old_us = (ids.created_ms(stale_id) or 0) * 1000 - 120_000_000
    stale = q.enqueue_call("t.b", (3,), job_id=ids._encode(old_us << 12 | 1, 7))
    raw = [e.decode() for e in redis.lrange(keys.ix_task("t.b"), 0, -1)]
    assert raw[0] == made.id and len(made.id) == 19
    assert re.fullmatch(r"\d{13}:order-17", raw[1]) and raw[2].endswith(":" + stale.id)
    assert [j.id for j in q.find(task="t.b", since=60).jobs] == [stale.id, mine.id, made.id]
    # enqueued_at is what since reads, each job's own
    assert [j.id for j in q.find(task="t.b", since=time.time() - between).jobs] == [stale.id]

    # a bare entry of an id made eight days ago is aged out by the next look after the index
    week_ago = ids._encode((int(time.time()) - 8 * 86400) * 1_000_000 << 12, 1)
    redis.lpush(keys.ix_task("t.b"), week_ago)
    redis.pexpire(keys.ix_task("t.b"), 7 * 86_400_000 - 2000)
    q.enqueue_call("t.b", (4,))
    left = [jobindex.parse(e)[1] for e in redis.lrange(keys.ix_task("t.b"), 0, -1)]
    assert week_ago not in left and left[:3] == [made.id, mine.id, stale.id]
