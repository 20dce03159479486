"""A worker pool's versions (pure): its versioned Deployment's name, labels and env, versions
that change with the pool's own pod template only, and each version's load read from the
workers of its own queues, and the pinned queues each set of workers owns."""

from __future__ import annotations

import asyncio
from typing import Any

from kubeq.store.versions import VERSION_ENV
from kubeq_operator import pinned, rollout, versioned
from kubeq_operator.crd import LABEL_POOL, LABEL_VERSION
from kubeq_operator.spec import TaskQueueSpec, parse


def spec(pools: list[dict[str, Any]], strategy: str = "Versioned") -> TaskQueueSpec:
    return parse(
        {
            "redis": {"url": "redis://redis:6379/0"},
            "queues": ["default"],
            "worker": {"image": "shop:1", "tasks": "shop.tasks"},
            "rollout": {"strategy": strategy},
            "pools": pools,
        }
    )


def test_a_pool_version_is_its_own_deployment_named_after_the_pool_deployment() -> None:
    s = spec([{"name": "gpu", "image": "shop-gpu:1"}])
    (pool,) = s.pools
    version = versioned.version_of(s.of_pool(pool))
    name = versioned.pool_deployment("shop", "gpu", s.of_pool(pool))
    assert name == f"shop-gpu-pool-v{version}"
    m = versioned.build_pool("shop", "prod", s, pool, 2)
    assert m["metadata"]["name"] == name and m["spec"]["replicas"] == 2
    assert m["metadata"]["labels"][LABEL_VERSION] == version
    selector = m["spec"]["selector"]["matchLabels"]
    assert (selector[LABEL_POOL], selector[LABEL_VERSION]) == ("gpu", version)
    pod = m["spec"]["template"]
    assert pod["metadata"]["labels"][LABEL_VERSION] == version
    (worker,) = [c for c in pod["spec"]["containers"] if c["image"] == "shop-gpu:1"]
    assert {"name": VERSION_ENV, "value": version} in worker["env"]
    # rolling: the pool's one Deployment, as before
    rolling = spec([{"name": "gpu"}], strategy="Rolling")
    assert versioned.pool_deployment("shop", "gpu", rolling.of_pool(rolling.pools[0])) == (
        "shop-gpu-pool"
    )


def test_a_pools_image_change_is_a_version_of_that_pool_only() -> None:
    before = spec([{"name": "gpu", "image": "g:1"}, {"name": "cpu"}])
    after = spec([{"name": "gpu", "image": "g:2"}, {"name": "cpu"}])

    def versions(s: TaskQueueSpec) -> list[str]:
        return [versioned.version_of(s), *(versioned.version_of(s.of_pool(p)) for p in s.pools)]

    (own1, gpu1, cpu1), (own2, gpu2, cpu2) = versions(before), versions(after)
    assert gpu1 != gpu2 and (own1, cpu1) == (own2, cpu2)


def test_each_version_load_counts_the_workers_of_its_own_queues_only() -> None:
    s = spec([{"name": "gpu"}])
    pool_queues = set(s.of_pool(s.pools[0]).physical_queues)
    assert pool_queues == {"default@gpu"}
    docs = [
        {"version": "aaaa", "queues": ["default"], "busy": 3, "prefetched": 0},
        {"version": "bbbb", "queues": ["default@gpu"], "busy": 1, "prefetched": 1},
        {"version": "cccc", "queues": ["default@gpu"], "busy": 0, "prefetched": 0},
    ]
    assert rollout.load_by_version(docs, pool_queues) == {"bbbb": (2, 1), "cccc": (0, 0)}
    assert rollout.load_by_version(docs, set(s.physical_queues)) == {"aaaa": (3, 1)}


class QueueSet:
    """The one call ``pinned.find`` makes of a client: the queue set's members."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    async def smembers(self, key: str) -> set[bytes]:
        assert key == "kubeq:queues"
        return {n.encode() for n in self.names}


def test_a_pools_pinned_queues_belong_to_the_pools_versions_only() -> None:
    """The rollout driver reads each set of workers' pinned queues from the spec as that set
    sees it: a pool's track finds ``<queue>@<pool>~V`` and the TaskQueue's own track finds
    ``<queue>~V``, never the other's (so neither keeps, scales or dead-letters the other's)."""
    s = spec([{"name": "gpu", "image": "shop-gpu:1"}])
    (pool,) = s.pools
    client = QueueSet(["default", "default@gpu", "default~m1", "default@gpu~g1", "other~x"])
    assert asyncio.run(pinned.find(client, s)) == {"m1": ["default~m1"]}
    assert asyncio.run(pinned.find(client, s.of_pool(pool))) == {"g1": ["default@gpu~g1"]}
