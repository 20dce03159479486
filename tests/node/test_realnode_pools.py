"""Worker pools on the real node (real kubelet and containerd, the chart's operator in a pod):
two pools of one TaskQueue scale independently, each from its own backlog; and a Job-mode
pool whose image cannot be pulled is reported, its job stays queued (never leased, no
attempt), and runs once the pool's image is fixed.

Timings are printed as TIMINGS lines, never asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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

BAD_IMAGES = {
    "ErrImageNeverPull": ("localhost/kubeq-not-on-this-node:none", "Never"),
    "ErrImagePull": ("localhost/kubeq-not-on-this-node:none", "IfNotPresent"),
    "InvalidImageName": ("localhost/KUBEQ-NOT-A-REFERENCE:x", "Never"),
}
"""Why a pod cannot start -> an image and pull policy that make it so: an image the node does
not have, never pulled or pulled from a registry that does not answer (https://localhost:
refused at once, nothing leaves the machine; the kubelet then backs off, ImagePullBackOff),
and a name that is no image reference."""
PULL_BACKOFF = "ImagePullBackOff"


def replicas(api: Api, ns: str, name: str) -> int:
    dep = api.deployment(ns, name)
    return -1 if dep is None else int(dep.spec.replicas or 0)


def pool_pods(api: Api, ns: str, tq: str, pool: str) -> list[Any]:
    return [
        p
        for p in api.pods(ns, tq)
        if (p.metadata.labels or {}).get("kubeq.dev/pool") == pool
        and p.status.phase in ("Pending", "Running")
    ]


def watch_until(
    done: Callable[[], bool], sample: Callable[[], dict[str, int]], timeout: float, what: str
) -> dict[str, int]:
    """Poll ``sample`` until ``done``; the highest value seen of each key."""
    most: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while True:
        for k, v in sample().items():
            most[k] = max(most.get(k, v), v)
        if done():
            return most
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; seen {most}")
        time.sleep(0.5)


@pytest.mark.usefixtures("chart")
def test_two_pools_scale_independently_from_their_own_backlogs(
    request: pytest.FixtureRequest, real_client: Any, real_namespace: str
) -> None:
    url: str = request.getfixturevalue("pod_redis_url")
    image: str = request.getfixturevalue("images")["worker"]
    ns, api, tq = real_namespace, Api(real_client), "mix"
    body = worker_tq(tq, ns, url, image, concurrency=1)
    body["spec"]["pools"] = [
        {"name": p, "scaling": {"minReplicas": 0, "maxReplicas": 2, "jobsPerReplica": 1}}
        for p in ("fast", "slow")
    ]
    api.create_tq(body)
    dep = {p: f"{tq}-{p}-pool" for p in ("fast", "slow")}
    for p in dep.values():
        wait_for(lambda p=p: api.deployment(ns, p), timeout=60, message=f"Deployment {p}")
    app = kubeq.App(url)
    q = queue_of(tq, ns)
    key = f"{kubeq.defaults.PREFIX}:pools"
    wait_for(lambda: app.redis.hget(key, q), timeout=60, message="pools published")

    def sample() -> dict[str, int]:
        out = {f"{p}_replicas": replicas(api, ns, d) for p, d in dep.items()}
        out.update({f"{p}_pods": len(pool_pods(api, ns, tq, p)) for p in dep})
        return out

    def backlog_on(pool: str, first: int) -> dict[str, int]:
        """4 jobs of 6 s for ``pool`` only: it goes up to 2 and back to 0 pods."""
        calls = [
            kubeq.Call("e2e.work", (first + i,), {"seconds": 6}, queue=q, worker_pool=pool)
            for i in range(4)
        ]
        assert {j.queue for j in app.enqueue_many(calls)} == {f"{q}@{pool}"}
        up = watch_until(
            lambda: replicas(api, ns, dep[pool]) == 2, sample, 180, f"{pool} scaled to 2"
        )
        rest = watch_until(
            lambda: (
                app.redis.llen("e2e:runs") == first + 4
                and replicas(api, ns, dep[pool]) == 0
                and not pool_pods(api, ns, tq, pool)
            ),
            sample,
            300,
            f"{pool}'s 4 jobs done and {pool} back to zero pods",
        )
        return {k: max(up[k], rest[k]) for k in up}

    t0 = time.monotonic()
    slow_phase = backlog_on("slow", 0)
    slow_s = round(time.monotonic() - t0, 1)
    # the other pool stayed at its minimum, zero, the whole time
    assert (slow_phase["fast_replicas"], slow_phase["fast_pods"]) == (0, 0), slow_phase
    assert slow_phase["slow_pods"] >= 2, slow_phase

    fast_phase = backlog_on("fast", 4)
    assert (fast_phase["slow_replicas"], fast_phase["slow_pods"]) == (0, 0), fast_phase
    assert fast_phase["fast_pods"] >= 2, fast_phase
    assert sample() == dict.fromkeys(sample(), 0), "both pools back to zero"

    runs = [r.decode().split("|") for r in app.redis.lrange("e2e:runs", 0, -1)]
    ran_by = {int(n): pod for n, pod, *_ in runs}
    assert sorted(ran_by) == list(range(8)) and len(runs) == 8, runs  # each job once
    assert all(ran_by[i].startswith(f"{dep['slow']}-") for i in range(4)), ran_by
    assert all(ran_by[i].startswith(f"{dep['fast']}-") for i in range(4, 8)), ran_by
    scaled = [e.message for e in api.events(ns, tq) if e.message.startswith("pool ")]
    assert any(m.startswith("pool slow: 0 -> ") for m in scaled), scaled
    assert any(m.startswith("pool fast: 0 -> ") for m in scaled), scaled
    report(
        "realnode_pools",
        {"slow_phase_s": slow_s, "all_s": round(time.monotonic() - t0, 1), **slow_phase},
    )
    app.close()


@pytest.mark.usefixtures("chart")
@pytest.mark.parametrize("why", sorted(BAD_IMAGES))
def test_a_job_pod_whose_image_cannot_be_pulled_is_reported_and_its_job_waits(
    why: str, request: pytest.FixtureRequest, real_client: Any, real_namespace: str
) -> None:
    url: str = request.getfixturevalue("pod_redis_url")
    image: str = request.getfixturevalue("images")["worker"]
    ns, api, tq = real_namespace, Api(real_client), "pull"
    bad, pull_policy = BAD_IMAGES[why]
    reasons = {why, PULL_BACKOFF} if why == "ErrImagePull" else {why}
    body = worker_tq(tq, ns, url, image)
    body["spec"]["worker"]["imagePullPolicy"] = pull_policy
    pool = {"name": "gpu", "mode": "Job", "scaling": {"maxReplicas": 2}}
    body["spec"]["pools"] = [{**pool, "image": bad}]
    api.create_tq(body)
    app = kubeq.App(url)
    q = queue_of(tq, ns)
    key = f"{kubeq.defaults.PREFIX}:pools"
    wait_for(lambda: app.redis.hget(key, q), timeout=60, message="pools published")
    (handle,) = app.enqueue_many(
        [kubeq.Call("e2e.work", (1,), {"seconds": 1}, queue=q, worker_pool="gpu", max_attempts=1)]
    )

    cond = wait_for(
        lambda: (c := api.condition(ns, tq, "JobPodsStarted")) and c["status"] == "False" and c,
        timeout=180,
        message="JobPodsStarted False",
    )
    assert cond["reason"] in reasons, cond
    assert "pool gpu" in cond["message"] and "stays queued" in cond["message"], cond
    event = wait_for(
        lambda: next((e for e in api.events(ns, tq) if e.reason == "JobPodNotStarting"), None),
        timeout=60,
        message="a JobPodNotStarting Event",
    )
    assert event.type == "Warning" and bad in event.message, event.message
    assert any(r in event.message for r in reasons), event.message
    selector = jobpods.selector(tq, "gpu")
    batch = client.BatchV1Api(real_client)
    for _ in range(15):  # passes go by: no Job piles up behind the stuck one, the report holds
        made = batch.list_namespaced_job(ns, label_selector=selector).items
        assert len(made) == 1, [j.metadata.name for j in made]
        cond = api.condition(ns, tq, "JobPodsStarted") or {}
        assert cond.get("status") == "False" and cond.get("reason") in reasons, cond
        time.sleep(1)
    status = next(p for p in api.get_tq(ns, tq)["status"]["pools"] if p["name"] == "gpu")
    assert (status["backlog"], status["jobsPending"]) == (1, 1), status
    info = handle.info()
    assert (info.status, info.attempts, info.deliveries) == ("queued", 0, 0), info

    # fixed: the Job that never started is replaced and the job runs, once, first time
    api.patch_tq(ns, tq, {"spec": {"pools": [{**pool, "image": image}]}})
    assert handle.result(timeout=240) == 1
    info = handle.info()
    assert (info.attempts, info.deliveries) == (1, 1), (info.attempts, info.deliveries)
    runs = [r.decode().split("|") for r in app.redis.lrange("e2e:runs", 0, -1)]
    assert [r[0] for r in runs] == ["1"], runs
    wait_for(
        lambda: (c := api.condition(ns, tq, "JobPodsStarted")) and c["status"] == "True",
        timeout=60,
        message="JobPodsStarted True again",
    )
    # Events are posted asynchronously by the operator: wait, and name them all if not
    wait_for(
        lambda: any(e.reason == "PoolJobReplaced" for e in api.events(ns, tq)),
        timeout=60,
        message=lambda: (
            f"a PoolJobReplaced Event; {[(e.reason, e.message) for e in api.events(ns, tq)]}"
        ),
    )
    app.close()
