"""A Job-mode pool whose worker starts and exits at once, before taking a job, on the real
node: the pool's image lacks the tasks module, so every pod's ``kubeq worker`` exits 2. The
operator reports it (the ``JobPodsStarted`` condition and a Warning Event, with the worker's
own last words), backs off instead of making a new Job for the same job each pass, the job
stays queued with no attempt, and it runs once the pool's image is fixed.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

import kubeq
from kubeq_operator import jobpods
from localcluster.pytest_plugin import wait_for
from tests.node.test_realnode_e2e import (  # noqa: F401 - fixtures
    chart,
    images,
    pod_redis_url,
    worker_tq,
)
from tests.operator.opsupport import Api, queue_of

WATCH_S = 40
"""How long the failing pool is watched: the Jobs it makes meanwhile are counted."""


@pytest.mark.usefixtures("chart")
def test_a_job_worker_that_exits_before_its_job_is_reported_and_backed_off(
    request: pytest.FixtureRequest, real_client: Any, real_namespace: str
) -> None:
    url: str = request.getfixturevalue("pod_redis_url")
    built: dict[str, str] = request.getfixturevalue("images")
    ns, api, tq = real_namespace, Api(real_client), "crash"
    batch = client.BatchV1Api(real_client)
    body = worker_tq(tq, ns, url, built["worker"])
    pool = {"name": "render", "mode": "Job", "scaling": {"maxReplicas": 2}}
    # the bare kubeq image: no e2e_tasks module in it, `kubeq worker e2e_tasks` exits 2
    body["spec"]["pools"] = [{**pool, "image": built["kubeq"]}]
    api.create_tq(body)
    app = kubeq.App(url)
    q = queue_of(tq, ns)
    key = f"{kubeq.defaults.PREFIX}:pools"
    wait_for(lambda: app.redis.hget(key, q), timeout=60, message="pools published")
    (handle,) = app.enqueue_many(
        [kubeq.Call("e2e.work", (1,), {"seconds": 1}, queue=q, worker_pool="render")]
    )
    selector = jobpods.selector(tq, "render")

    def made() -> list[Any]:
        return list(batch.list_namespaced_job(ns, label_selector=selector).items)

    wait_for(
        lambda: any(j.status.failed for j in made()),
        timeout=180,
        message="the first Job's pod failed",
    )
    # the operator backs off: over WATCH_S seconds it makes a few Jobs, not one per pass
    first = len(made())
    time.sleep(WATCH_S)
    later = [j.metadata.name for j in made()]
    assert len(later) - first <= 3, f"{len(later) - first} Jobs in {WATCH_S} s: {later}"
    info = handle.info()
    assert (info.status, info.attempts, info.deliveries) == ("queued", 0, 0), info

    cond = api.condition(ns, tq, "JobPodsStarted") or {}
    assert (cond.get("status"), cond.get("reason")) == ("False", "WorkerFailed"), cond
    assert "pool render" in cond["message"] and "cannot load tasks" in cond["message"], cond
    # the Event is queued for kopf's poster in the pass that set the condition: it may land later
    event = wait_for(
        lambda: next((e for e in api.events(ns, tq) if e.reason == "JobPodFailed"), None),
        timeout=30,
        message=lambda: f"a JobPodFailed Event: {[e.reason for e in api.events(ns, tq)]}",
    )
    assert event.type == "Warning" and "exit code 2" in event.message, event.message
    assert "stay queued" in event.message, event.message
    status = next(p for p in api.get_tq(ns, tq)["status"]["pools"] if p["name"] == "render")
    assert status["podsFailedInARow"] >= 1, status

    # fixed: the next Job runs the job, once, first attempt; the report clears
    api.patch_tq(ns, tq, {"spec": {"pools": [{**pool, "image": built["worker"]}]}})
    assert handle.result(timeout=300) == 1
    info = handle.info()
    assert (info.attempts, info.deliveries) == (1, 1), (info.attempts, info.deliveries)
    wait_for(
        lambda: (c := api.condition(ns, tq, "JobPodsStarted")) and c["status"] == "True",
        timeout=60,
        message="JobPodsStarted True again",
    )
    app.close()
