"""Jobs pinned to a worker version, on the local control plane (real kube-apiserver, the node
agent running the worker pods as processes, real Redis, the operator as its own process): an
old version whose workers hold nothing stays while jobs pinned to it wait (scaled back to a
pod when its Deployment has none), runs them, and only then goes; with ``maxDrainSeconds``
it goes anyway and the jobs still pinned to it are dead-lettered with the reason, as are jobs
pinned to a version the TaskQueue does not run."""

from __future__ import annotations

import pytest

from kubeq.store.keys import QueueKeys
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, queue_of
from tests.operator.test_cluster_rollout import change_image, runs, start, status_version, versions

pytestmark = pytest.mark.cluster


def test_an_old_version_stays_and_scales_while_jobs_pinned_to_it_wait(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    import kubeq

    ns, name = k8s_namespace, "pin"
    q = queue_of(name, ns)
    app = kubeq.App(redis_url)
    v1 = start(api, ns, name, redis_url, {"strategy": "Versioned"})
    # due in 45 s: they wait (delayed) in version 1's queue, none held by a worker
    pinned = app.enqueue_many(
        [kubeq.Call("e2e.work", (7200 + i,), {}, queue=q, version=v1, delay=45) for i in range(3)]
    )
    assert {j.queue for j in pinned} == {f"{q}~{v1}"}
    v2 = change_image(api, ns, name, v1)
    waiting = wait_for(
        lambda: (e := status_version(api, ns, name, v1)) and e["state"] == "Draining" and e,
        timeout=60,
        message="version 1 draining",
    )
    assert waiting.get("pinnedWaiting") == 3 and waiting["inFlight"] == 0, waiting
    # its Deployment loses its pod: the operator gives it one back for the pinned jobs
    api.apps.patch_namespaced_deployment_scale(
        versions(api, ns, name)[v1].metadata.name, ns, {"spec": {"replicas": 0}}
    )
    wait_for(
        lambda: any(e.reason == "PinnedScaled" for e in api.events(ns, name)),
        timeout=60,
        message="version 1 scaled back for its pinned jobs",
    )
    # an unpinned job runs on version 2 meanwhile
    app.enqueue_many([kubeq.Call("e2e.work", (7299,), {}, queue=q)])
    (pod, _), *_more = wait_for(lambda: runs(app, 7299) or None, timeout=60, message="unpinned")
    assert f"-v{v2}-" in pod
    assert v1 in versions(api, ns, name)  # held nothing for the whole time, yet kept
    for i, job in enumerate(pinned):
        assert job.result(timeout=120) == 7200 + i
        ((pod, _),) = runs(app, 7200 + i)
        assert f"-v{v1}-" in pod
    wait_for(lambda: v1 not in versions(api, ns, name), timeout=60, message="version 1 removed")
    # the operator posts the Event after it deleted the Deployment and forgot the version in
    # Redis, through kopf's queue of events: it may come a moment after the Deployment went
    wait_for(
        lambda: any(
            e.reason == "VersionRemoved" and v1 in e.message and "hold no job" in e.message
            for e in api.events(ns, name)
        ),
        timeout=30,
        message="a VersionRemoved Event saying version 1 held no job",
    )
    app.close()


def test_max_drain_seconds_dead_letters_the_jobs_still_pinned_to_the_old_version(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    import kubeq

    ns, name = k8s_namespace, "pinmax"
    q = queue_of(name, ns)
    app = kubeq.App(redis_url)
    v1 = start(api, ns, name, redis_url, {"strategy": "Versioned", "maxDrainSeconds": 4})
    pinned = app.enqueue_many(
        [kubeq.Call("e2e.work", (7300,), {}, queue=q, version=v1, delay=300)]
    )[0]
    nowhere = app.enqueue_many([kubeq.Call("e2e.work", (7301,), {}, queue=q, version="nosuch")])[0]
    lost = wait_for(
        lambda: nowhere.status() == "failed" and nowhere.info(), timeout=60, message="nosuch"
    )
    assert "pinned to worker version nosuch" in lost.reason, lost.reason
    change_image(api, ns, name, v1)
    wait_for(lambda: v1 not in versions(api, ns, name), timeout=60, message="version 1 removed")
    info = wait_for(
        lambda: pinned.status() == "failed" and pinned.info(), timeout=60, message="dead"
    )
    assert f"pinned to version {v1}, which was removed after maxDrainSeconds (4)" in info.reason
    dead = app.redis.zrange(QueueKeys.of(pinned.queue).dead, 0, -1)
    assert pinned.id.encode() in dead
    assert not runs(app, 7300) and not runs(app, 7301)

    def buried() -> list[str]:
        return [e.message for e in api.events(ns, name) if e.reason == "PinnedJobsDeadLettered"]

    def buried_v1() -> list[str] | None:
        found = buried()
        return found if any(v1 in m for m in found) else None

    # the operator posts the Event after the dead-lettering that the wait above saw in Redis
    events = wait_for(
        buried_v1,
        timeout=30,
        message=lambda: f"a PinnedJobsDeadLettered Event naming {v1}: {buried()}",
    )
    assert any(v1 in m for m in events) and any("nosuch" in m for m in events), events
    app.close()
