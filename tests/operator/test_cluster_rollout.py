"""Versioned rollouts on the local control plane (real kube-apiserver, the node agent running
the worker pods as processes, real Redis, the operator as its own process): a worker image
change while a long job runs starts a new version for new jobs, the old version finishes its
job (one run, never handed back) and takes no new one, then its Deployment goes; with
``maxDrainSeconds`` the old version goes while its job runs, which is handed back and runs on
the new version."""

from __future__ import annotations

import time
from typing import Any

import pytest

from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, queue_of, taskqueue

pytestmark = pytest.mark.cluster

VERSION = "kubeq.dev/version"


def versions(api: Api, ns: str, tq: str) -> dict[str, Any]:
    """version -> Deployment, of the TaskQueue's own worker Deployments."""
    deps = api.apps.list_namespaced_deployment(ns, label_selector=f"kubeq.dev/taskqueue={tq}")
    return {
        d.metadata.labels.get(VERSION, ""): d
        for d in deps.items
        if "kubeq.dev/pool" not in d.metadata.labels and not d.metadata.deletion_timestamp
    }


def runs(app: Any, n: int) -> list[tuple[str, float]]:
    """(pod, start time) of each finished run of e2e.work(n)."""
    out = []
    for raw in app.redis.lrange("e2e:runs", 0, -1):
        num, pod, start, _ = raw.decode().split("|")
        if int(num) == n:
            out.append((pod, float(start)))
    return out


def status_version(api: Api, ns: str, tq: str, version: str) -> dict[str, Any] | None:
    entries = api.get_tq(ns, tq).get("status", {}).get("versions") or []
    return next((e for e in entries if e["version"] == version), None)


def start(api: Api, ns: str, name: str, redis_url: str, rollout: dict[str, Any]) -> str:
    """Create a Versioned TaskQueue with one worker pod; returns its first version."""
    api.create_tq(
        taskqueue(
            name,
            ns,
            redis_url,
            worker={"concurrency": 2, "terminationGracePeriodSeconds": 8},
            scaling={"minReplicas": 1, "maxReplicas": 1},
            rollout=rollout,
        )
    )
    first = wait_for(lambda: versions(api, ns, name) or None, timeout=30, message="version 1")
    (v1,) = first
    wait_for(
        lambda: (versions(api, ns, name)[v1].status.ready_replicas or 0) >= 1,
        timeout=60,
        message="version 1's pod ready",
    )
    return v1


def change_image(api: Api, ns: str, name: str, v1: str) -> str:
    api.patch_tq(ns, name, {"spec": {"worker": {"image": "local:2"}}})
    wait_for(lambda: len(versions(api, ns, name)) == 2, timeout=30, message="version 2")
    both = versions(api, ns, name)
    (v2,) = set(both) - {v1}
    # the old version's Deployment is not rolled
    assert both[v1].spec.template.spec.containers[0].image == "local"
    assert both[v2].spec.template.spec.containers[0].image == "local:2"
    assert both[v2].metadata.name.endswith(f"-v{v2}")
    return v2


def test_an_image_change_lets_the_running_job_finish_on_the_old_version(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    import kubeq

    ns, name = k8s_namespace, "roll"
    q = queue_of(name, ns)
    app = kubeq.App(redis_url)
    v1 = start(api, ns, name, redis_url, {"strategy": "Versioned"})
    app.enqueue_many([kubeq.Call("e2e.work", (7001,), {"seconds": 25}, queue=q)])
    wait_for(
        lambda: (status_version(api, ns, name, v1) or {}).get("inFlight") == 1,
        timeout=30,
        message="the long job runs on version 1",
    )
    deployed_at = time.time()
    v2 = change_image(api, ns, name, v1)
    draining = wait_for(
        lambda: (e := status_version(api, ns, name, v1)) and e["state"] == "Draining" and e,
        timeout=60,
        message="version 1 draining",
    )
    assert draining["inFlight"] == 1 and draining["retiredAt"]
    assert (status_version(api, ns, name, v2) or {}).get("state") == "Current"

    # a new job goes to version 2, though version 1's worker has a free slot
    app.enqueue_many([kubeq.Call("e2e.work", (7002,), {"seconds": 0.1}, queue=q)])
    (pod2, _), *more = wait_for(lambda: runs(app, 7002) or None, timeout=60, message="job 2")
    assert not more and f"-v{v2}-" in pod2

    # the long job ends where it started, once: never handed back
    wait_for(lambda: runs(app, 7001) or None, timeout=90, message="the long job ends")
    (pod1, started), *again = runs(app, 7001)
    assert not again and f"-v{v1}-" in pod1 and started < deployed_at
    # then version 1 goes
    wait_for(lambda: v1 not in versions(api, ns, name), timeout=60, message="version 1 removed")
    wait_for(  # the Event is posted beside the deletion: it may show a moment later
        lambda: any(
            e.reason == "VersionRemoved" and v1 in e.message and "hold no job" in e.message
            for e in api.events(ns, name)
        ),
        timeout=30,
        message="a VersionRemoved Event",
    )
    wait_for(
        lambda: status_version(api, ns, name, v1) is None, timeout=30, message="status updated"
    )
    assert runs(app, 7001) == [(pod1, started)]
    app.close()


def test_max_drain_seconds_removes_the_old_version_and_its_job_is_handed_back(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    import kubeq

    ns, name = k8s_namespace, "rollmax"
    q = queue_of(name, ns)
    app = kubeq.App(redis_url)
    v1 = start(api, ns, name, redis_url, {"strategy": "Versioned", "maxDrainSeconds": 3})
    job = app.enqueue_many([kubeq.Call("e2e.work", (7101,), {"seconds": 30}, queue=q)])[0]
    wait_for(
        lambda: (status_version(api, ns, name, v1) or {}).get("inFlight") == 1,
        timeout=30,
        message="the long job runs on version 1",
    )
    v2 = change_image(api, ns, name, v1)
    wait_for(lambda: v1 not in versions(api, ns, name), timeout=60, message="version 1 removed")
    wait_for(  # the Event is posted beside the deletion: it may show a moment later
        lambda: any(
            e.reason == "VersionRemoved"
            and v1 in e.message
            and "maxDrainSeconds (3) passed" in e.message
            for e in api.events(ns, name)
        ),
        timeout=30,
        message="a VersionRemoved Event",
    )
    # its pod drained (8 s grace - 5 s margin), handed the job back: it runs on version 2
    (pod, _), *again = wait_for(lambda: runs(app, 7101) or None, timeout=120, message="rerun")
    assert not again and f"-v{v2}-" in pod
    assert job.result(timeout=30) == 7101
    assert job.info().attempts == 1  # a hand-back counts no attempt
    app.close()
