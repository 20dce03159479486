"""Versioned rollouts of worker pools on the local control plane (real kube-apiserver, the node
agent running the worker pods as processes, real Redis, the operator as its own process): a
pool's image change while a pool job runs starts a new version of the pool for new jobs, the
job finishes on the old version (one run, never handed back), then the old version's
Deployment goes; the TaskQueue's own workers are not touched. With ``maxDrainSeconds`` the
pool's old version goes while its job runs, which is handed back and runs on the new one."""

from __future__ import annotations

import time
from typing import Any

import pytest

from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, queue_of, taskqueue

pytestmark = pytest.mark.cluster

VERSION = "kubeq.dev/version"
POOL = "kubeq.dev/pool"


def pool_versions(api: Api, ns: str, tq: str, pool: str) -> dict[str, Any]:
    """version -> Deployment, of the pool's Deployments not being deleted."""
    deps = api.apps.list_namespaced_deployment(
        ns, label_selector=f"kubeq.dev/taskqueue={tq},{POOL}={pool}"
    )
    return {
        d.metadata.labels.get(VERSION, ""): d
        for d in deps.items
        if not d.metadata.deletion_timestamp
    }


def own_versions(api: Api, ns: str, tq: str) -> set[str]:
    deps = api.apps.list_namespaced_deployment(ns, label_selector=f"kubeq.dev/taskqueue={tq}")
    return {d.metadata.name for d in deps.items if POOL not in d.metadata.labels}


def runs(app: Any, n: int) -> list[tuple[str, float]]:
    """(pod, start time) of each finished run of e2e.work(n)."""
    out = []
    for raw in app.redis.lrange("e2e:runs", 0, -1):
        num, pod, start, _ = raw.decode().split("|")
        if int(num) == n:
            out.append((pod, float(start)))
    return out


def pool_version(api: Api, ns: str, tq: str, pool: str, version: str) -> dict[str, Any] | None:
    """status.pools[pool].versions[version]."""
    pools = api.get_tq(ns, tq).get("status", {}).get("pools") or []
    entry = next((p for p in pools if p["name"] == pool), {})
    return next((e for e in entry.get("versions") or [] if e["version"] == version), None)


def slow_pool(image: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "slow",
            "image": image,
            "concurrency": 2,
            "scaling": {"minReplicas": 1, "maxReplicas": 1},
        }
    ]


def start(api: Api, ns: str, name: str, redis_url: str, rollout: dict[str, Any]) -> str:
    """A Versioned TaskQueue with a pool 'slow' of one pod; returns the pool's first version."""
    api.create_tq(
        taskqueue(
            name,
            ns,
            redis_url,
            worker={"terminationGracePeriodSeconds": 8},
            rollout=rollout,
            pools=slow_pool("local"),
        )
    )
    (v1,) = wait_for(
        lambda: pool_versions(api, ns, name, "slow") or None, timeout=30, message="pool v1"
    )
    wait_for(
        lambda: (pool_versions(api, ns, name, "slow")[v1].status.ready_replicas or 0) >= 1,
        timeout=60,
        message="the pool's version 1 pod ready",
    )
    return v1


def change_image(api: Api, ns: str, name: str, v1: str) -> str:
    own = own_versions(api, ns, name)
    api.patch_tq(ns, name, {"spec": {"pools": slow_pool("local:2")}})
    wait_for(lambda: len(pool_versions(api, ns, name, "slow")) == 2, timeout=30, message="pool v2")
    both = pool_versions(api, ns, name, "slow")
    (v2,) = set(both) - {v1}
    # the old version's Deployment is not rolled; each is <pool Deployment>-v<version>
    assert both[v1].spec.template.spec.containers[0].image == "local"
    assert both[v2].spec.template.spec.containers[0].image == "local:2"
    assert both[v1].metadata.name == f"{name}-slow-pool-v{v1}"
    assert both[v2].metadata.name == f"{name}-slow-pool-v{v2}"
    assert own_versions(api, ns, name) == own  # the TaskQueue's own workers: no new version
    return v2


def test_a_pool_image_change_lets_the_pool_job_finish_on_the_old_version(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    import kubeq

    ns, name = k8s_namespace, "proll"
    q = queue_of(name, ns)
    app = kubeq.App(redis_url)
    v1 = start(api, ns, name, redis_url, {"strategy": "Versioned"})
    long_job = kubeq.Call("e2e.work", (7201,), {"seconds": 25}, queue=q, worker_pool="slow")
    app.enqueue_many([long_job])
    wait_for(
        lambda: (pool_version(api, ns, name, "slow", v1) or {}).get("inFlight") == 1,
        timeout=30,
        message="the long job runs on the pool's version 1",
    )
    deployed_at = time.time()
    v2 = change_image(api, ns, name, v1)
    draining = wait_for(
        lambda: (e := pool_version(api, ns, name, "slow", v1)) and e["state"] == "Draining" and e,
        timeout=60,
        message="the pool's version 1 draining",
    )
    assert draining["inFlight"] == 1 and draining["retiredAt"]
    assert (pool_version(api, ns, name, "slow", v2) or {}).get("state") == "Current"

    # a new pool job goes to version 2, though version 1's worker has a free slot
    app.enqueue_many(
        [kubeq.Call("e2e.work", (7202,), {"seconds": 0.1}, queue=q, worker_pool="slow")]
    )
    (pod2, _), *more = wait_for(lambda: runs(app, 7202) or None, timeout=60, message="job 2")
    assert not more and pod2.startswith(f"{name}-slow-pool-v{v2}-")

    # the long job ends where it started, once: never handed back
    wait_for(lambda: runs(app, 7201) or None, timeout=90, message="the long job ends")
    (pod1, started), *again = runs(app, 7201)
    assert not again and pod1.startswith(f"{name}-slow-pool-v{v1}-") and started < deployed_at
    # then the pool's version 1 goes, with an Event naming the pool
    wait_for(
        lambda: v1 not in pool_versions(api, ns, name, "slow"),
        timeout=60,
        message="the pool's version 1 removed",
    )
    removed = [e.message for e in api.events(ns, name) if e.reason == "VersionRemoved"]
    assert any(m.startswith("pool slow: ") and v1 in m and "hold no job" in m for m in removed)
    wait_for(
        lambda: pool_version(api, ns, name, "slow", v1) is None,
        timeout=30,
        message="status.pools[slow].versions updated",
    )
    assert runs(app, 7201) == [(pod1, started)]
    app.close()


def test_max_drain_seconds_removes_the_pools_old_version_and_its_job_is_handed_back(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    import kubeq

    ns, name = k8s_namespace, "prollmax"
    q = queue_of(name, ns)
    app = kubeq.App(redis_url)
    v1 = start(api, ns, name, redis_url, {"strategy": "Versioned", "maxDrainSeconds": 3})
    call = kubeq.Call("e2e.work", (7301,), {"seconds": 30}, queue=q, worker_pool="slow")
    job = app.enqueue_many([call])[0]
    wait_for(
        lambda: (pool_version(api, ns, name, "slow", v1) or {}).get("inFlight") == 1,
        timeout=30,
        message="the long job runs on the pool's version 1",
    )
    v2 = change_image(api, ns, name, v1)
    wait_for(
        lambda: v1 not in pool_versions(api, ns, name, "slow"),
        timeout=60,
        message="the pool's version 1 removed",
    )
    removed = [e.message for e in api.events(ns, name) if e.reason == "VersionRemoved"]
    assert any(
        m.startswith("pool slow: ") and v1 in m and "maxDrainSeconds (3) passed" in m
        for m in removed
    ), removed
    # its pod drained (8 s grace - 5 s margin), handed the job back: it runs on version 2
    (pod, _), *again = wait_for(lambda: runs(app, 7301) or None, timeout=120, message="rerun")
    assert not again and pod.startswith(f"{name}-slow-pool-v{v2}-")
    assert job.result(timeout=30) == 7301
    assert job.info().attempts == 1  # a hand-back counts no attempt
    app.close()
