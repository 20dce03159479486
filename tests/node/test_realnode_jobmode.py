"""A Job-mode worker pool on the real node (real kubelet, containerd, the chart's operator in
a pod with its RBAC): ``maxReplicas: 3`` and 10 long jobs never run more than 3 pods at once
and create exactly 10 Kubernetes Jobs, each job once, each on its own pod.

Timings are printed as a TIMINGS line, never asserted.
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
    report,
    worker_tq,
)
from tests.operator.opsupport import Api, queue_of


@pytest.mark.usefixtures("chart")
def test_a_job_mode_pool_never_exceeds_max_replicas_and_makes_one_job_per_job(
    request: pytest.FixtureRequest, real_client: Any, real_namespace: str
) -> None:
    url: str = request.getfixturevalue("pod_redis_url")
    image: str = request.getfixturevalue("images")["worker"]
    ns, api = real_namespace, Api(real_client)
    core, batch = client.CoreV1Api(real_client), client.BatchV1Api(real_client)
    body = worker_tq("jm", ns, url, image)
    body["spec"]["pools"] = [
        {
            "name": "render",
            "mode": "Job",
            "scaling": {"maxReplicas": 3},
            "job": {"ttlSecondsAfterFinished": 3600},
        }
    ]
    api.create_tq(body)
    app = kubeq.App(url)
    q = queue_of("jm", ns)
    key = f"{kubeq.defaults.PREFIX}:pools"
    wait_for(lambda: app.redis.hget(key, q), timeout=60, message="pools published")
    selector = jobpods.selector("jm", "render")
    t0 = time.monotonic()
    handles = app.enqueue_many(
        [
            kubeq.Call("e2e.work", (i,), {"seconds": 20}, queue=q, worker_pool="render")
            for i in range(10)
        ]
    )
    most, marks, at_most = 0, {}, []
    while time.monotonic() - t0 < 600 and app.redis.llen("e2e:runs") < 10:
        pods = core.list_namespaced_pod(ns, label_selector=selector).items
        live = [p for p in pods if p.status.phase in ("Pending", "Running")]
        if len(live) > most:
            jobs = batch.list_namespaced_job(ns, label_selector=selector).items
            most, at_most = (
                len(live),
                [
                    [(p.metadata.name, p.status.phase) for p in pods],
                    [(j.metadata.name, j.status.to_dict()) for j in jobs],
                ],
            )
        if any(p.status.phase == "Running" for p in pods):
            marks.setdefault("first_pod_running_s", round(time.monotonic() - t0, 2))
        time.sleep(0.25)
    marks["all_done_s"] = round(time.monotonic() - t0, 2)
    assert app.redis.llen("e2e:runs") == 10, marks
    created = [e.message for e in api.events(ns, "jm") if e.reason.startswith("PoolJob")]
    assert most <= 3, f"{most}\n{at_most}\n{created}"
    runs = [r.decode().split("|") for r in app.redis.lrange("e2e:runs", 0, -1)]
    assert sorted(int(r[0]) for r in runs) == list(range(10)), "a job ran twice or not at all"
    assert len({r[1] for r in runs}) == 10, "each job on its own pod"
    assert {h.info().attempts for h in handles} == {1}
    time.sleep(5)  # a few more passes with nothing ready create nothing
    made = batch.list_namespaced_job(ns, label_selector=selector).items
    assert len(made) == 10, [j.metadata.name for j in made]
    report("realnode_jobmode", {"jobs": 10, "max_live_pods": most, "k8s_jobs": len(made), **marks})
    app.close()
