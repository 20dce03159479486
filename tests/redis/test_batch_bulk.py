"""Batch items sent in bulk: ``enqueue_many`` of many items is a few ``batch.lua`` calls (up
to 500 items each, one round trip), each item still its own job and handle, the batches formed
in Redis as if each item had been sent alone; a resent call writes nothing twice."""

from __future__ import annotations

import json

import qtasks
import redis

import kubeq
from kubeq.client.batchsend import plan_items
from kubeq.client.flow import checked, flow_for
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import run_pipeline
from tests.redis.workers import StartWorker

T = qtasks.app.tasks
KEYS = QueueKeys.of("default")


def script_calls(r: redis.Redis) -> int:
    """Script calls Redis ran (a NOSCRIPT answer, before the script is loaded, is not one)."""
    stats = r.info("commandstats")
    return sum(
        int(v["calls"]) - int(v.get("failed_calls", 0))
        for k, v in stats.items()
        if k.startswith("cmdstat_eval")
    )


def test_many_items_are_a_few_script_calls_and_keep_their_own_jobs(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    before = script_calls(r)
    jobs = app.enqueue_many([T["flowtasks.big_batches"].s(i) for i in range(1250)])
    assert script_calls(r) - before == 3  # 500 items per batch.lua call
    assert len({j.id for j in jobs}) == 1250 and all(j.created for j in jobs)
    assert {j.status() for j in jobs} == {"batched"}
    carriers = [j.info().batch for j in jobs]
    assert len(set(carriers[:500])) == len(set(carriers[500:1000])) == 1
    assert carriers[0] != carriers[500] != carriers[1000] == carriers[1249]
    assert r.lrange(KEYS.items(carriers[0]), 0, -1) == [j.id.encode() for j in jobs[:500]]
    assert r.zcard(KEYS.ready) == 2  # two full batches, ready at once; the third forms
    start_worker()
    assert [j.result(timeout=120) for j in jobs] == list(range(1250))
    sizes = sorted(int(s) for s in r.lrange("flowtest:big-sizes", 0, -1))
    assert sizes == [250, 500, 500]


def test_items_of_two_keys_among_other_calls_get_their_handles_in_order(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    per_tenant = T["flowtasks.per_tenant"]
    calls = [
        per_tenant.s({"tenant": "a", "n": 0}),
        T["qtasks.add"].s(1, 2),
        per_tenant.s({"tenant": "b", "n": 1}),
        T["flowtasks.reindex"].s("doc", 1),
        per_tenant.s({"tenant": "a", "n": 2}),
    ]
    jobs = app.enqueue_many(calls)
    assert [j.status() for j in jobs] == ["batched", "queued", "batched", "scheduled", "batched"]
    a0, _, b1, _, a2 = (j.info().batch for j in jobs)
    assert a0 == a2 != b1
    assert r.lrange(KEYS.items(a0), 0, -1) == [jobs[0].id.encode(), jobs[4].id.encode()]
    start_worker()
    assert jobs[1].result(timeout=60) == 3
    assert jobs[3].result(timeout=60) == {"doc": "doc", "version": 1}
    for j in (jobs[0], jobs[2], jobs[4]):
        j.result(timeout=60)
    got = sorted(json.loads(b) for b in r.lrange("flowtest:tenant-batches", 0, -1))
    assert got == [["a"], ["b"]]


def test_a_resent_call_writes_no_item_twice(app: kubeq.App, redis_url: str) -> None:
    """The reply of a batch.lua call is lost and the client sends the same call again: each
    item is answered as written by this call, and the batch holds it once."""
    r = redis.Redis.from_url(redis_url)
    task = T["flowtasks.insert_events"]
    calls = [task.s(i) for i in range(7)]
    flows = []
    for c in calls:
        f = flow_for(c, app.defaults_for(c.task))
        assert f is not None and f.mode == "batch"
        flows.append(f)
    bares = [
        checked(c, f, app.defaults_for(c.task), False) for c, f in zip(calls, flows, strict=True)
    ]
    planned = plan_items(
        bares,
        flows,
        list(range(7)),
        prefix=app.prefix,
        defaults_for=app.defaults_for,
        queue=None,
        route=None,
    )
    ((_, call, _),) = planned
    first = run_pipeline(r, [call])
    again = run_pipeline(r, [call])
    assert [c for c, _ in first[0]] == [c for c, _ in again[0]] == [1] * 7
    carrier = app.job(first[0][0][1].decode()).info().batch
    assert r.llen(KEYS.items(carrier)) == 7
    assert r.hget(KEYS.job(carrier), "batch_size") == b"7"
