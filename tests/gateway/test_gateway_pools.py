"""A POST's ``worker_pool``: a pool the TaskQueue does not declare is a 400 naming the field
and the pool (nothing enqueued); a declared one puts the job in the pool's queue, where a GET
finds it."""

from __future__ import annotations

import time

import redis

from kubeq import defaults
from kubeq.client import pools
from tests.gateway.conftest import World

ADD = {"task": "qtasks.add", "args": [1, 2]}


def test_a_pool_the_taskqueue_does_not_declare_is_a_400(world: World) -> None:
    q = world.queue("tq-a")
    r = redis.Redis.from_url(world.redis_url)
    status, reply = world.gateway.call(
        "POST", world.jobs("tq-a"), {**ADD, "worker_pool": "gpu"}, world.token("alice")
    )
    assert (status, reply.get("field")) == (400, "worker_pool"), reply
    assert "'gpu'" in reply["error"], reply
    status, reply = world.gateway.call(
        "POST", world.jobs("tq-a"), {**ADD, "worker_pool": "GPU!"}, world.token("alice")
    )
    assert (status, reply.get("field")) == (400, "worker_pool"), reply
    assert r.zcard(f"kubeq:{{{q}@gpu}}:ready") == 0
    # once the TaskQueue declares it (what the operator publishes), the job goes to its queue
    pools.publish(r, defaults.PREFIX, "gw/tq-a", [q], {"gpu": []})
    try:
        deadline = time.monotonic() + 60  # the gateway's App keeps what it read for a few seconds
        while True:
            status, reply = world.gateway.call(
                "POST", world.jobs("tq-a"), {**ADD, "worker_pool": "gpu"}, world.token("alice")
            )
            if status != 400 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == 201, reply
        job = reply["jobs"][0]
        assert job["queue"] == f"{q}@gpu"
        status, info = world.gateway.call(
            "GET", f"{world.jobs('tq-a')}/{job['id']}?queue={q}@gpu", None, world.token("alice")
        )
        assert (status, info.get("status")) == (200, "queued"), info
    finally:
        r.hdel(pools.keys.pools_key(defaults.PREFIX), q)
