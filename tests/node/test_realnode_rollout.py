"""A versioned rollout on the real node (real kubelet and containerd, the chart's operator in
a pod): the worker image changes while a 2-minute job runs. The job finishes on the version
it started on (one start, one attempt, its pod never restarted), jobs enqueued after the
change run on the new version (each task reports its ``KUBEQ_VERSION``), and the old
version's Deployment goes only after its job has ended.

The two images are one worker image (tests/node/nodetasks.py FROM the kubeq image) under two
references, both loaded into the node's containerd: a different image reference in the pod
template, which is what a deploy changes. Timings are printed as a TIMINGS line.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import kubeq
from localcluster.pytest_plugin import wait_for
from tests.node.podmansupport import podman
from tests.node.test_realnode_e2e import (  # noqa: F401 - fixtures
    chart,
    images,
    incluster,
    pod_redis_url,
    report,
    worker_tq,
)
from tests.operator.opsupport import Api, queue_of
from tests.operator.test_cluster_rollout import status_version, versions

HERE = Path(__file__).resolve().parent
NODE_WORKER_CONTAINERFILE = """ARG BASE
FROM ${BASE}
COPY --chown=10001:10001 nodetasks.py /app/
"""
LONG_S = 120.0


@pytest.fixture(scope="module")
def two_images(kubeq_image: str, node_image: Any) -> tuple[str, str]:
    """Worker images A and B (the same build under two references), both on the node."""
    a = incluster.derived_image(
        "node-worker",
        kubeq_image,
        NODE_WORKER_CONTAINERFILE,
        {"nodetasks.py": HERE / "nodetasks.py"},
    )
    b = a.replace("localhost/kubeq-node-worker:", "localhost/kubeq-node-worker-b:")
    podman("tag", a, b)
    return node_image(a), node_image(b)


def ledger(app: kubeq.App, key: str) -> list[tuple[int, str, str]]:
    """(job marker, pod, version) of each start or end recorded by node.versioned."""
    out = []
    for raw in app.redis.lrange(key, 0, -1):
        n, pod, version, _ = raw.decode().split("|")
        out.append((int(n), pod, version))
    return out


@pytest.mark.usefixtures("chart")
def test_an_image_change_during_a_long_job_lets_it_finish_on_its_version(
    request: pytest.FixtureRequest, real_client: Any, real_namespace: str
) -> None:
    url: str = request.getfixturevalue("pod_redis_url")
    image_a, image_b = request.getfixturevalue("two_images")
    ns, api, tq = real_namespace, Api(real_client), "roll"
    core = client.CoreV1Api(real_client)
    body = worker_tq(tq, ns, url, image_a, concurrency=2, minReplicas=1, maxReplicas=1)
    body["spec"]["worker"]["tasks"] = "nodetasks"
    body["spec"]["rollout"] = {"strategy": "Versioned"}
    api.create_tq(body)
    (v1,) = wait_for(lambda: versions(api, ns, tq) or None, timeout=60, message="version A")
    wait_for(
        lambda: (versions(api, ns, tq)[v1].status.ready_replicas or 0) >= 1,
        timeout=180,
        message="version A's pod ready",
    )
    app = kubeq.App(url)
    q = queue_of(tq, ns)
    t0 = time.monotonic()
    # max_attempts=1: were the long job handed back and run again, it would count
    (long_job,) = app.enqueue_many(
        [kubeq.Call("node.versioned", (1,), {"seconds": LONG_S}, queue=q, max_attempts=1)]
    )
    wait_for(lambda: ledger(app, "node:started"), timeout=120, message="the long job started")
    ((_, pod_a, ran_on),) = ledger(app, "node:started")
    assert ran_on == v1 and f"-v{v1}-" in pod_a, (v1, pod_a, ran_on)

    api.patch_tq(ns, tq, {"spec": {"worker": {"image": image_b}}})
    wait_for(lambda: len(versions(api, ns, tq)) == 2, timeout=60, message="version B")
    both = versions(api, ns, tq)
    (v2,) = set(both) - {v1}
    assert both[v1].spec.template.spec.containers[0].image == image_a  # A is not rolled
    assert both[v2].spec.template.spec.containers[0].image == image_b
    changed_s = round(time.monotonic() - t0, 1)
    draining = wait_for(
        lambda: (e := status_version(api, ns, tq, v1)) and e["state"] == "Draining" and e,
        timeout=120,
        message="version A draining",
    )
    assert draining["inFlight"] == 1, draining  # status shows both versions and their jobs
    assert (status_version(api, ns, tq, v2) or {}).get("state") == "Current"

    # jobs enqueued after the change, while A's worker runs the long job with a free slot,
    # run on B
    assert long_job.status() == "active", "the long job ended before the change took hold"
    after = app.enqueue_many(
        [kubeq.Call("node.versioned", (10 + i,), {"seconds": 0.5}, queue=q) for i in range(3)]
    )
    for job in after:
        assert job.result(timeout=240)["version"] == v2, job.result()
    short_done_s = round(time.monotonic() - t0, 1)

    # A's Deployment stays while its job runs; its pod is never restarted
    a_gone_while_running = False
    while not any(n == 1 for n, _, _ in ledger(app, "node:ended")):
        a_gone_while_running |= v1 not in versions(api, ns, tq)
        pod = core.read_namespaced_pod(pod_a, ns)
        assert pod.status.container_statuses[0].restart_count == 0
        assert time.monotonic() - t0 < LONG_S + 300, "the long job never ended"
        time.sleep(1)
    assert not a_gone_while_running, "version A's Deployment was removed while its job ran"
    assert long_job.result(timeout=60) == {"pod": pod_a, "version": v1}
    info = long_job.info()
    assert (info.attempts, info.deliveries) == (1, 1), (info.attempts, info.deliveries)
    starts = ledger(app, "node:started")
    assert [s for s in starts if s[0] == 1] == [(1, pod_a, v1)], starts  # started once
    assert sorted(n for n, _, _ in starts) == [1, 10, 11, 12], starts
    assert all(v == v2 and f"-v{v2}-" in pod for n, pod, v in starts if n != 1), starts

    # then A goes: its workers hold no job
    wait_for(lambda: v1 not in versions(api, ns, tq), timeout=120, message="version A removed")
    removed = wait_for(  # Events are posted asynchronously by the operator
        lambda: [e.message for e in api.events(ns, tq) if e.reason == "VersionRemoved"],
        timeout=60,
        message="a VersionRemoved Event",
    )
    assert any(v1 in m and "hold no job" in m for m in removed), removed
    wait_for(lambda: status_version(api, ns, tq, v1) is None, timeout=60, message="status")
    assert (status_version(api, ns, tq, v2) or {}).get("state") == "Current"
    report(
        "realnode_rollout",
        {
            "long_job_s": LONG_S,
            "image_changed_s": changed_s,
            "new_jobs_done_s": short_done_s,
            "old_version_removed_s": round(time.monotonic() - t0, 1),
        },
    )
    app.close()
