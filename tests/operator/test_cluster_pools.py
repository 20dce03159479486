"""Worker pools on the local control plane (real kube-apiserver, real Redis, the operator as
its own process): each pool its own Deployment scaled from its own backlog, the pools
published so an undeclared pool is refused at enqueue, and a bad pools spec as a condition."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, queue_of, taskqueue

pytestmark = pytest.mark.cluster

POOLS = [
    {"name": "fast", "concurrency": 1, "scaling": {"maxReplicas": 2, "jobsPerReplica": 1}},
    {
        "name": "slow",
        "concurrency": 1,
        "resources": {"requests": {"cpu": "50m"}},
        "scaling": {"maxReplicas": 3, "jobsPerReplica": 1},
    },
]


def replicas(api: Api, ns: str, name: str) -> int | None:
    dep = api.deployment(ns, name)
    return None if dep is None else int(dep.spec.replicas or 0)


def pool_status(api: Api, ns: str, tq: str, pool: str) -> dict[str, Any] | None:
    entries = api.get_tq(ns, tq).get("status", {}).get("pools") or []
    return next((e for e in entries if e["name"] == pool), None)


def test_two_pools_scale_independently_and_an_unknown_pool_is_refused(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    import kubeq
    from kubeq.client.pools import UnknownWorkerPool

    ns, q = k8s_namespace, queue_of("mix", k8s_namespace)
    api.create_tq(taskqueue("mix", ns, redis_url, pools=POOLS))
    fast = wait_for(lambda: api.deployment(ns, "mix-fast-pool"), timeout=30, message="fast")
    slow = wait_for(lambda: api.deployment(ns, "mix-slow-pool"), timeout=30, message="slow")
    assert slow.metadata.labels["kubeq.dev/pool"] == "slow"
    assert slow.metadata.labels["kubeq.dev/taskqueue"] == "mix"
    assert slow.metadata.owner_references[0].name == "mix"
    cmd = slow.spec.template.spec.containers[0].command
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--queue"] == [f"{q}@slow"]
    assert slow.spec.template.spec.containers[0].resources.requests["cpu"] == "50m"
    assert fast.spec.replicas == 0 and slow.spec.replicas == 0
    assert api.deployment(ns, "mix-worker") is not None  # the TaskQueue's own, as before

    # the operator publishes the pools; the client reads them at enqueue
    app = kubeq.App(redis_url)
    published = wait_for(
        lambda: app.redis.hget(f"{kubeq.defaults.PREFIX}:pools", q), timeout=30, message="pools"
    )
    assert sorted(json.loads(published)["pools"]) == ["fast", "slow"]
    with pytest.raises(UnknownWorkerPool) as refused:
        app.enqueue_many([kubeq.Call("e2e.work", (0,), queue=q, worker_pool="gpu")])
    assert "'gpu'" in str(refused.value) and "fast, slow" in str(refused.value)
    assert app.queue(f"{q}@gpu").stats().backlog == 0

    # backlog on slow only: slow scales up, fast stays at zero
    calls = [
        kubeq.Call("e2e.work", (i,), {"seconds": 8}, queue=q, worker_pool="slow") for i in range(6)
    ]
    assert {j.queue for j in app.enqueue_many(calls)} == {f"{q}@slow"}
    wait_for(lambda: replicas(api, ns, "mix-slow-pool") == 3, timeout=60, message="slow up")
    assert replicas(api, ns, "mix-fast-pool") == 0
    assert replicas(api, ns, "mix-worker") == 0  # the TaskQueue's own queue is empty
    entry = wait_for(
        lambda: (e := pool_status(api, ns, "mix", "slow")) and e.get("desiredReplicas") == 3 and e,
        timeout=30,
        message="status.pools[slow]",
    )
    assert entry["deployment"] == "mix-slow-pool" and entry["decision"].startswith("pool slow:")
    fast_entry = pool_status(api, ns, "mix", "fast")
    assert fast_entry is not None and fast_entry.get("desiredReplicas", 0) == 0
    wait_for(
        lambda: any(
            e.message.startswith("pool slow: 0 -> 3 replicas") for e in api.events(ns, "mix")
        ),
        timeout=30,
        message="an Event naming the pool",
    )

    # then backlog on fast only: fast scales up on its own, slow keeps its 3
    app.enqueue_many(
        [
            kubeq.Call("e2e.work", (10 + i,), {"seconds": 8}, queue=q, worker_pool="fast")
            for i in range(2)
        ]
    )
    wait_for(lambda: replicas(api, ns, "mix-fast-pool") == 2, timeout=60, message="fast up")
    assert replicas(api, ns, "mix-slow-pool") == 3
    # each pool's pods ran exactly its own jobs
    wait_for(lambda: app.redis.llen("e2e:runs") == 8, timeout=120, message="8 runs")
    runs = [r.decode().split("|") for r in app.redis.lrange("e2e:runs", 0, -1)]
    ran_by = {int(n): pod for n, pod, *_ in runs}
    assert all(ran_by[i].startswith("mix-slow-pool-") for i in range(6)), ran_by
    assert all(ran_by[10 + i].startswith("mix-fast-pool-") for i in range(2)), ran_by
    app.close()


def test_a_bad_pools_spec_becomes_a_condition_naming_the_field(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    cases = {
        "twotasks": (
            [{"name": "a", "tasks": ["e2e.work"]}, {"name": "b", "tasks": ["e2e.work"]}],
            "spec.pools[1].tasks[0]",
        ),
        "dupname": ([{"name": "a"}, {"name": "a"}], "spec.pools[1].name"),
        "unknown": ([{"name": "a", "gpus": 1}], "spec.pools[0].gpus"),
    }
    for name, (pools, _) in cases.items():
        api.create_tq(taskqueue(name, ns, redis_url, pools=pools))
    for name, (_, field) in cases.items():
        cond = wait_for(
            lambda n=name: (
                (c := api.condition(ns, n, "Ready")) and c["reason"] == "InvalidSpec" and c
            ),
            timeout=30,
            message=f"{name}: InvalidSpec",
        )
        assert field in cond["message"], cond["message"]
        assert cond["status"] == "False"
    # fixed, it is served
    api.patch_tq(ns, "dupname", {"spec": {"pools": [{"name": "a"}, {"name": "b"}]}})
    wait_for(
        lambda: api.deployment(ns, "dupname-b-pool") is not None,
        timeout=30,
        message="the fixed spec's pool Deployment",
    )


def test_a_removed_pool_is_no_longer_published_and_a_deleted_taskqueue_publishes_nothing(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    import kubeq

    ns, q = k8s_namespace, queue_of("gone", k8s_namespace)
    app = kubeq.App(redis_url)
    key = f"{kubeq.defaults.PREFIX}:pools"

    def declared() -> list[str] | None:
        raw = app.redis.hget(key, q)
        return None if raw is None else sorted(json.loads(raw)["pools"])

    api.create_tq(taskqueue("gone", ns, redis_url, pools=[{"name": "a"}, {"name": "b"}]))
    wait_for(lambda: declared() == ["a", "b"], timeout=30, message="a and b published")
    wait_for(lambda: api.deployment(ns, "gone-b-pool"), timeout=30, message="b's Deployment")
    api.patch_tq(ns, "gone", {"spec": {"pools": [{"name": "a"}]}})
    wait_for(lambda: declared() == ["a"], timeout=30, message="b no longer published")
    wait_for(
        lambda: any(
            e.reason == "PoolRemoved" and "pool b " in e.message for e in api.events(ns, "gone")
        ),
        timeout=30,
        message="a PoolRemoved Event",
    )
    api.delete_tq(ns, "gone")
    wait_for(lambda: declared() is None, timeout=60, message="nothing published once deleted")
    app.close()
