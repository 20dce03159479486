"""The flow scripts of the protocol (docs/protocol.md, flow.lua and batch.lua): a client's
debounced, singleton and batch-item calls, written straight to a real Redis, join and form
as kubeq's own, and real Python workers run them (the ``client`` fixture runs each client
under test: kubeq's Python client and clients/go)."""

from __future__ import annotations

import json

import redis

from tests.protocol.conftest import Client
from tests.redis.helpers import wait_until

ADD = "qtasks.add"


def test_debounced_calls_of_a_key_join_one_job_with_the_newest_arguments(
    client: Client, redis_url: str, prefix: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    calls = [{"task": ADD, "args": [n, 1], "debounce": 60, "debounce_key": "doc"} for n in range(3)]
    ids = [client("enqueue", "proto", jobs=[c])["ids"][0] for c in calls]
    assert len(set(ids)) == 1
    job = f"{prefix}:{{proto}}:job:{ids[0]}"
    assert r.hget(job, "status") == b"scheduled"
    assert json.loads(r.hget(job, "payload") or b"")["args"] == [2, 1]
    assert r.hget(job, "flow_joined") == b"2"
    assert r.get(f"{prefix}:{{proto}}:flow:{ADD}:doc") == ids[0].encode()


def test_a_skip_singleton_call_returns_the_keys_job(
    client: Client, redis_url: str, prefix: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    jobs = [{"task": ADD, "args": [n, n], "singleton": "skip"} for n in (1, 2)]
    ids = client("enqueue", "proto", jobs=jobs)["ids"]
    assert ids[0] == ids[1]
    payload = json.loads(r.hget(f"{prefix}:{{proto}}:job:{ids[0]}", "payload") or b"")
    assert payload["args"] == [1, 1]  # skip changes nothing
    other = client("enqueue", "proto", jobs=[{**jobs[0], "singleton_key": "acct-2"}])["ids"]
    assert other[0] != ids[0]


def test_batch_items_form_a_batch_a_python_worker_runs(
    client: Client, worker: object, redis_url: str, prefix: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    batch = {"max_size": 10, "max_wait": 0.5}  # the task's kubeq.Batch (flowtasks.py)
    items = [{"task": "flowtasks.insert_events", "args": [v], "batch": batch} for v in (1, 2, 3)]
    ids = client("enqueue", "proto", jobs=items)["ids"]
    assert len(set(ids)) == 3
    carriers = {r.hget(f"{prefix}:{{proto}}:job:{i}", "batch") for i in ids}
    assert len(carriers) == 1 and None not in carriers
    assert {client("status", "proto", id=i)["status"] for i in ids} == {"batched"}
    worker("proto")  # type: ignore[operator]
    for i, v in zip(ids, (1, 2, 3), strict=True):
        assert client("result", "proto", id=i, wait=60) == {"status": "finished", "result": v * 10}


def test_abort_stops_one_item_of_a_running_batch(
    client: Client, worker: object, redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    batch = {"max_size": 3, "max_wait": 0.3}  # flowtasks.held_batch's kubeq.Batch
    items = [{"task": "flowtasks.held_batch", "args": [v], "batch": batch} for v in (1, 2, 3)]
    ids = client("enqueue", "proto", jobs=items)["ids"]
    worker("proto")  # type: ignore[operator]
    wait_until(lambda: r.llen("flowtest:held-runs") == 1, 120, "the batch to run")
    assert client("cancel", "proto", id=ids[1], abort=True) == {"stopped": True}
    assert client("status", "proto", id=ids[1]) == {"status": "aborted"}
    r.set("flowtest:go", 1)
    assert client("result", "proto", id=ids[0], wait=60) == {"status": "finished", "result": 10}
    assert client("result", "proto", id=ids[2], wait=60) == {"status": "finished", "result": 30}
    assert client("status", "proto", id=ids[1]) == {"status": "aborted"}  # its answer: dropped
