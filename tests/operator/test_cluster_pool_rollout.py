"""Versioned rollouts of worker pools on the local control plane (real kube-apiserver, the node
agent running the worker pods as processes, real Redis, the operator as its own process): a
pool's image change while a pool job runs starts a new version of the pool for new jobs, the
job finishes on the old version (one run, never handed back), then the old version's
Deployment goes; the TaskQueue's own workers are not touched. With ``maxDrainSeconds`` the
pool's old version goes while its job runs, which is handed back and runs on the new one.
A Job-mode pool has no versions, and its template change never stops a Job that runs."""

from __future__ import annotations

import time
from typing import Any

import pytest

from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, queue_of, taskqueue
from tests.operator.test_cluster_jobmode import jobs, wait_published
from tests.operator.test_cluster_rollout import runs

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


def long_job_on_v1(
    api: Api, ns: str, name: str, redis_url: str, rollout: dict[str, Any], num: int
) -> tuple[Any, str, Any]:
    """Start the TaskQueue, run a 25 s pool job ``num`` on its version 1: (app, v1, job)."""
    import kubeq

    app = kubeq.App(redis_url)
    v1 = start(api, ns, name, redis_url, rollout)
    call = kubeq.Call(
        "e2e.work", (num,), {"seconds": 25}, queue=queue_of(name, ns), worker_pool="slow"
    )
    job = app.enqueue_many([call])[0]
    wait_for(
        lambda: (pool_version(api, ns, name, "slow", v1) or {}).get("inFlight") == 1,
        timeout=30,
        message="the long job runs on the pool's version 1",
    )
    return app, v1, job


def removed_because(api: Api, ns: str, name: str, version: str, why: str) -> None:
    """The pool's ``version`` is gone, with a VersionRemoved Event naming the pool and ``why``."""
    wait_for(
        lambda: version not in pool_versions(api, ns, name, "slow"),
        timeout=60,
        message="the pool's version 1 removed",
    )
    wait_for(  # the Event is posted beside the deletion: it may show a moment later
        lambda: any(
            e.reason == "VersionRemoved"
            and e.message.startswith("pool slow: ")
            and version in e.message
            and why in e.message
            for e in api.events(ns, name)
        ),
        timeout=30,
        message=f"a VersionRemoved Event naming the pool and {why!r}",
    )


def test_a_pool_image_change_lets_the_pool_job_finish_on_the_old_version(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    import kubeq

    ns, name = k8s_namespace, "proll"
    q = queue_of(name, ns)
    app, v1, _ = long_job_on_v1(api, ns, name, redis_url, {"strategy": "Versioned"}, 7201)
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
    removed_because(api, ns, name, v1, "hold no job")
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
    ns, name = k8s_namespace, "prollmax"
    rollout = {"strategy": "Versioned", "maxDrainSeconds": 3}
    app, v1, job = long_job_on_v1(api, ns, name, redis_url, rollout, 7301)
    v2 = change_image(api, ns, name, v1)
    removed_because(api, ns, name, v1, "maxDrainSeconds (3) passed")
    # its pod drained (8 s grace - 5 s margin), handed the job back: it runs on version 2
    (pod, _), *again = wait_for(lambda: runs(app, 7301) or None, timeout=120, message="rerun")
    assert not again and pod.startswith(f"{name}-slow-pool-v{v2}-")
    assert job.result(timeout=30) == 7301
    assert job.info().attempts == 1  # a hand-back counts no attempt
    app.close()


def job_pool(image: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "render",
            "mode": "Job",
            "image": image,
            "concurrency": 1,
            "job": {"ttlSecondsAfterFinished": 3600},  # every Job stays to be looked at
            "scaling": {"maxReplicas": 2},
        }
    ]


def test_a_job_mode_pools_template_change_never_stops_a_running_job(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    """A Job-mode pool has no versions: the Job that runs a job keeps running it on the old
    template (never deleted, never handed back); the next job gets a Job of the new one."""
    import kubeq

    ns, name = k8s_namespace, "jroll"
    q = queue_of(name, ns)
    api.create_tq(
        taskqueue(
            name,
            ns,
            redis_url,
            worker={"terminationGracePeriodSeconds": 8},
            rollout={"strategy": "Versioned"},
            pools=job_pool("local"),
        )
    )
    app = kubeq.App(redis_url)
    wait_published(app, q)
    call = kubeq.Call("e2e.work", (7401,), {"seconds": 20}, queue=q, worker_pool="render")
    (long_job,) = app.enqueue_many([call])
    wait_for(lambda: long_job.status() == "active", timeout=90, message="the long job runs")
    (first,) = jobs(api, ns, name, "render")
    api.patch_tq(ns, name, {"spec": {"pools": job_pool("local:2")}})
    wait_for(
        lambda: api.get_tq(ns, name).get("status", {}).get("observedGeneration", 0) >= 2,
        timeout=30,
        message="the new template seen",
    )
    short = kubeq.Call("e2e.work", (7402,), {"seconds": 0.1}, queue=q, worker_pool="render")
    app.enqueue_many([short])
    (pod2, _), *more = wait_for(lambda: runs(app, 7402) or None, timeout=120, message="job 2")
    by_name = {j.metadata.name: j for j in jobs(api, ns, name, "render")}
    (second,) = set(by_name) - {first.metadata.name}
    assert not more and pod2.startswith(second)
    assert by_name[second].spec.template.spec.containers[0].image == "local:2"

    # the long job ends on the Job that started it, once, with one attempt
    wait_for(lambda: long_job.status() == "finished", timeout=90, message="the long job ends")
    (pod1, _), *again = runs(app, 7401)
    assert not again and pod1.startswith(first.metadata.name)
    assert (long_job.info().attempts, long_job.info().deliveries) == (1, 1)
    assert first.metadata.name in {j.metadata.name for j in jobs(api, ns, name, "render")}
    assert not [e for e in api.events(ns, name) if e.reason == "PoolJobReplaced"]
    app.close()
