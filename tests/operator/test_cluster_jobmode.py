"""Job-mode worker pools on the local control plane (real kube-apiserver, Job controller and
scheduler, the node agent running pods as processes, real Redis, the operator as its own
process): one Kubernetes Job per job; pods that stay Pending count as capacity on the way,
so no pass creates more Jobs than jobs (KEDA ScaledJob's kedacore/keda#6157 and #7329);
``maxReplicas`` caps running plus pending Jobs; a pod that cannot start is reported and its
job stays queued with no attempt counted."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kubeq_operator import jobpods
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, queue_of, taskqueue

pytestmark = pytest.mark.cluster

NOWHERE = {"kubeq.dev/no-such-node": "true"}
"""A nodeSelector no node matches: the scheduler leaves the pods Pending (Unschedulable)."""


def job_pool(name: str, **over: Any) -> dict[str, Any]:
    return {
        "name": name,
        "mode": "Job",
        "concurrency": 1,
        "job": {"ttlSecondsAfterFinished": 3600},  # every Job stays to be counted
        **over,
    }


def jobs(api: Api, ns: str, tq: str, pool: str) -> list[Any]:
    from kubernetes import client

    batch = client.BatchV1Api(api.client)
    return list(batch.list_namespaced_job(ns, label_selector=jobpods.selector(tq, pool)).items)


def active(items: list[Any]) -> int:
    return sum(1 for j in items if not (j.status.succeeded or j.status.failed))


def live_pods(api: Api, ns: str, tq: str, pool: str) -> int:
    """The pool's pods pending or running (a pod that ended holds no capacity, even while
    its Job's status lags behind it)."""
    items = api.core.list_namespaced_pod(ns, label_selector=jobpods.selector(tq, pool)).items
    return sum(1 for p in items if p.status.phase in ("Pending", "Running"))


def pool_status(api: Api, ns: str, tq: str, pool: str) -> dict[str, Any]:
    entries = api.get_tq(ns, tq).get("status", {}).get("pools") or []
    return next((e for e in entries if e["name"] == pool), {})


def watch_jobs(api: Api, ns: str, tq: str, pool: str, passes: int) -> list[int]:
    """The pool's Job count after each of ``passes`` more operator passes (its status's
    ``jobsCreated`` is rewritten every pass; pollSeconds is 0.5)."""
    counts = []
    for _ in range(passes):
        counts.append(len(jobs(api, ns, tq, pool)))
        time.sleep(0.5)
    return counts


def enqueue(app: Any, q: str, pool: str, n: int, seconds: float = 0.05) -> list[Any]:
    import kubeq

    calls = [
        kubeq.Call("e2e.work", (i,), {"seconds": seconds}, queue=q, worker_pool=pool)
        for i in range(n)
    ]
    return list(app.enqueue_many(calls))


def wait_published(app: Any, q: str) -> None:
    import kubeq

    key = f"{kubeq.defaults.PREFIX}:pools"
    wait_for(lambda: app.redis.hget(key, q), timeout=30, message="pools published")


def test_pending_pods_count_as_capacity_and_max_replicas_caps_pending_jobs(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    """kedacore/keda#6157: 5 jobs queued, pods that nothing schedules: exactly 5 Jobs over
    many passes; with maxReplicas 3 and 10 jobs, exactly 3. The pods are reported and the
    jobs stay queued, never leased, no attempt counted."""
    import kubeq

    ns, q = k8s_namespace, queue_of("pend", k8s_namespace)
    pools = [
        job_pool("five", nodeSelector=NOWHERE, scaling={"maxReplicas": 20}),
        job_pool("capped", nodeSelector=NOWHERE, scaling={"maxReplicas": 3}),
    ]
    api.create_tq(taskqueue("pend", ns, redis_url, pools=pools))
    app = kubeq.App(redis_url)
    wait_published(app, q)
    five = enqueue(app, q, "five", 5)
    capped = enqueue(app, q, "capped", 10)
    wait_for(lambda: len(jobs(api, ns, "pend", "five")) >= 5, timeout=60, message="5 Jobs")
    wait_for(lambda: len(jobs(api, ns, "pend", "capped")) >= 3, timeout=60, message="3 Jobs")
    counts = watch_jobs(api, ns, "pend", "five", 20)
    assert counts == [5] * 20, counts
    assert len(jobs(api, ns, "pend", "capped")) == 3
    entry = pool_status(api, ns, "pend", "capped")
    assert (entry["mode"], entry["jobsPending"], entry["maxJobs"]) == ("Job", 3, 3), entry
    assert pool_status(api, ns, "pend", "five")["jobsCreated"] == 5

    # reported: the condition and an Event per pod, naming the pool and why
    cond = wait_for(
        lambda: (c := api.condition(ns, "pend", "JobPodsStarted")) and c["status"] == "False" and c,
        timeout=60,
        message="JobPodsStarted False",
    )
    assert cond["reason"] == "Unschedulable" and "stays queued" in cond["message"], cond
    wait_for(
        lambda: sum(e.reason == "JobPodNotStarting" for e in api.events(ns, "pend")) >= 8,
        timeout=60,
        message="an Event per stuck pod",
    )
    # the jobs: still queued, never leased, no attempt counted
    assert app.queue(f"{q}@five").stats().backlog == 5
    assert app.queue(f"{q}@capped").stats().backlog == 10
    infos = [h.info() for h in five + capped]
    assert {(i.status, i.attempts, i.deliveries) for i in infos} == {("queued", 0, 0)}
    app.close()


def test_each_job_runs_in_its_own_job_and_pod_never_more_than_max_replicas(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    """Pods run here (the node agent): 8 jobs of 3 s with maxReplicas 3 make exactly 8
    Jobs, never more than 3 not finished at once, each job on its own pod; the Jobs carry
    their TTL."""
    import kubeq

    ns, q = k8s_namespace, queue_of("run", k8s_namespace)
    pool = job_pool("render", scaling={"maxReplicas": 3})
    api.create_tq(taskqueue("run", ns, redis_url, pools=[pool]))
    app = kubeq.App(redis_url)
    wait_published(app, q)
    handles = enqueue(app, q, "render", 8, seconds=3)
    most = 0

    def all_ran() -> bool:
        nonlocal most
        most = max(most, live_pods(api, ns, "run", "render"))
        return app.redis.llen("e2e:runs") == 8

    wait_for(all_ran, timeout=240, interval=0.2, message="8 runs")
    assert most <= 3, most
    runs = [r.decode().split("|") for r in app.redis.lrange("e2e:runs", 0, -1)]
    pods = [pod for _, pod, *_ in runs]
    assert len(set(pods)) == 8 and all(p.startswith("run-render-job-") for p in pods), pods
    assert {h.status() for h in handles} == {"finished"}
    wait_for(lambda: active(jobs(api, ns, "run", "render")) == 0, timeout=60, message="Jobs done")
    counts = watch_jobs(api, ns, "run", "render", 10)  # nothing ready: no more Jobs
    assert counts == [8] * 10, counts
    done = jobs(api, ns, "run", "render")
    assert all(j.status.succeeded == 1 for j in done)
    assert {j.spec.ttl_seconds_after_finished for j in done} == {3600}
    assert {j.metadata.owner_references[0].name for j in done} == {"run"}
    app.close()


def test_a_pod_that_cannot_start_is_reported_and_its_job_waits_until_the_pool_is_fixed(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    """A Job's pod whose container cannot be created (a missing Secret: what an image pull
    error is on a real node) is reported; its job stays queued with 0 attempts. Fixing the
    pool's pod template replaces the Job that never started, and the job runs."""
    import kubeq

    ns, q = k8s_namespace, queue_of("bad", k8s_namespace)
    missing = {"name": "X", "valueFrom": {"secretKeyRef": {"name": "no-such-secret", "key": "k"}}}
    api.create_tq(taskqueue("bad", ns, redis_url, pools=[job_pool("gpu", env=[missing])]))
    app = kubeq.App(redis_url)
    wait_published(app, q)
    (handle,) = enqueue(app, q, "gpu", 1)
    cond = wait_for(
        lambda: (c := api.condition(ns, "bad", "JobPodsStarted")) and c["status"] == "False" and c,
        timeout=90,
        message="JobPodsStarted False",
    )
    assert cond["reason"] == "CreateContainerConfigError" and "pool gpu" in cond["message"]
    event = wait_for(
        lambda: next((e for e in api.events(ns, "bad") if e.reason == "JobPodNotStarting"), None),
        timeout=60,
        message="a JobPodNotStarting Event",
    )
    assert event.type == "Warning" and "no-such-secret" in event.message, event.message
    assert watch_jobs(api, ns, "bad", "gpu", 6) == [1] * 6  # no Job piles up behind it
    info = handle.info()
    assert (info.status, info.attempts, info.deliveries) == ("queued", 0, 0)

    # fixed: the Job that never started is replaced, the job runs on the new pod
    api.patch_tq(ns, "bad", {"spec": {"pools": [job_pool("gpu")]}})
    wait_for(lambda: handle.status() == "finished", timeout=120, message="the job ran")
    assert handle.info().attempts == 1
    wait_for(
        lambda: (c := api.condition(ns, "bad", "JobPodsStarted")) and c["status"] == "True",
        timeout=60,
        message="JobPodsStarted True again",
    )
    assert any(e.reason == "PoolJobReplaced" for e in api.events(ns, "bad"))
    assert app.redis.llen("e2e:runs") == 1
    app.close()
