"""The whole product on real containers: `helm install` of the chart (the operator in a pod
with its ServiceAccount, securityContext and probes), Redis in a pod behind a Service, a
worker image built FROM the kubeq image with the quickstart's and the e2e tasks, and a
TaskQueue scaled 0 -> N -> 0 by the operator; then a scale-down while every worker runs a
long job, drained by the kubelet's real SIGTERM within terminationGracePeriodSeconds; and a
worker pod evicted through the Eviction API (what `kubectl drain` and a spot reclaim's node
drain call) in the middle of a job longer than its grace period: the job is handed back
without counting an attempt and finishes once, on the other pod.

Timings (backlog to first Running pod, ...) are printed as TIMINGS lines, never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import kubeq
from localcluster import ClusterInfo
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, queue_of, taskqueue

ROOT = Path(__file__).resolve().parents[2]
# The demo's real-container set-up (images, chart, Redis pod): tested here as it is used there.
sys.path.insert(0, str(ROOT / "examples" / "00-local-cluster"))
import incluster  # noqa: E402

WORKER_CONTAINERFILE = """ARG BASE
FROM ${BASE}
COPY --chown=10001:10001 tasks.py e2e_tasks.py /app/
"""


def report(name: str, data: dict[str, Any]) -> None:
    print(f"\nTIMINGS {json.dumps({'test': name, **data})}")


@pytest.fixture(scope="module")
def images(kubeq_image: str, node_image: Any) -> dict[str, str]:
    redis_ref = incluster.derived_image("redis", kubeq_image, incluster.REDIS_CONTAINERFILE, {})
    worker_ref = incluster.derived_image(
        "worker",
        kubeq_image,
        WORKER_CONTAINERFILE,
        {
            "tasks.py": ROOT / "examples" / "01-quickstart" / "tasks.py",
            "e2e_tasks.py": ROOT / "tests" / "e2e" / "e2e_tasks.py",
        },
    )
    return {
        "kubeq": node_image(kubeq_image),
        "redis": node_image(redis_ref),
        "worker": node_image(worker_ref),
    }


@pytest.fixture(scope="module")
def chart(real_cluster: ClusterInfo, real_kubectl: Any, images: dict[str, str]) -> Iterator[str]:
    """`helm install` of charts/kubeq with the kubeq image; waits for the operator pod Ready
    (its readiness probe) and yields the release namespace."""
    ns = incluster.RELEASE_NAMESPACE
    helm = [str(Path(real_cluster.bin_dir) / "helm"), "--kubeconfig", real_cluster.kubeconfig]
    try:
        incluster.helm_install(helm, images["kubeq"], pull_policy="Never")
    except subprocess.CalledProcessError as e:
        pods = real_kubectl("get", "pods", "-n", ns, "-o", "wide").stdout
        logs = real_kubectl("logs", "-n", ns, "deploy/kubeq", "--tail=40").stdout
        pytest.fail(f"helm install failed: {e.stderr}\n{pods}\n{logs}")
    yield ns
    real_kubectl("delete", "taskqueues", "--all", "-A", "--wait=true", "--timeout=90s")
    subprocess.run([*helm, "uninstall", "kubeq", "--namespace", ns, "--wait"], check=False)


@pytest.fixture
def pod_redis_url(real_client: Any, real_namespace: str, images: dict[str, str]) -> str:
    """A Redis pod behind a Service in the test namespace; its URL by ClusterIP (the local
    cluster runs no DNS), reachable from pods and, through kube-proxy, from this host."""
    cluster_ip = incluster.redis_in_cluster(
        client.CoreV1Api(real_client), real_namespace, images["redis"]
    )
    url = f"redis://{cluster_ip}:6379/0"

    def answers() -> bool:
        try:
            app = kubeq.App(url)
            ok = bool(app.redis.ping())
            app.close()
            return ok
        except Exception:
            return False

    wait_for(answers, timeout=120, interval=0.5, message=f"Redis behind its Service at {url}")
    return url


def worker_tq(name: str, ns: str, url: str, image: str, **scaling: Any) -> dict[str, Any]:
    body = taskqueue(
        name,
        ns,
        url,
        worker={
            "image": image,
            "imagePullPolicy": "Never",
            "tasks": "e2e_tasks",
            "env": [],
            "concurrency": scaling.pop("concurrency", 4),
            "terminationGracePeriodSeconds": 60,
        },
        scaling={
            "minReplicas": 0,
            "pollSeconds": 0.5,
            "idleSecondsBeforeZero": 5,
            "scaleDown": {"stabilizationSeconds": 3, "periodSeconds": 1, "maxPodsPerStep": 5},
            **scaling,
        },
    )
    return body


def running_pods(core: Any, ns: str, tq: str) -> list[Any]:
    pods = core.list_namespaced_pod(ns, label_selector=f"kubeq.dev/taskqueue={tq}").items
    return [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]


def test_taskqueue_scales_real_pods_from_zero_and_back(
    chart: str, real_client: Any, real_namespace: str, pod_redis_url: str, images: dict[str, str]
) -> None:
    ns, api, core = real_namespace, Api(real_client), client.CoreV1Api(real_client)
    app = kubeq.App(pod_redis_url)
    n = 1000
    api.create_tq(
        worker_tq("burst", ns, pod_redis_url, images["worker"], maxReplicas=3, jobsPerReplica=100)
    )
    wait_for(lambda: api.deployment(ns, "burst-worker"), timeout=60, message="Deployment")
    assert api.deployment(ns, "burst-worker").spec.replicas == 0

    q = queue_of("burst", ns)
    t0 = time.monotonic()
    jobs = app.enqueue_many(
        kubeq.Call("e2e.work", (i,), {"seconds": 0.01}, queue=q) for i in range(n)
    )
    marks: dict[str, float] = {}
    max_running = 0
    deadline = t0 + 300
    while time.monotonic() < deadline:
        now = round(time.monotonic() - t0, 2)
        running = running_pods(core, ns, "burst")
        max_running = max(max_running, len(running))
        if running:
            marks.setdefault("first_pod_running_s", now)
        if app.redis.llen("e2e:runs") >= n:
            marks.setdefault("all_done_s", now)
        pods = api.pods(ns, "burst")
        if "all_done_s" in marks and not pods:
            marks["zero_pods_s"] = now
            break
        time.sleep(0.25)
    assert "zero_pods_s" in marks, f"did not go back to zero pods: {marks}"
    assert [j.result(timeout=10) for j in jobs] == list(range(n))
    runs = [r.decode().split("|") for r in app.redis.lrange("e2e:runs", 0, -1)]
    assert sorted(int(r[0]) for r in runs) == list(range(n)), "a job ran twice or not at all"
    assert max_running >= 2, "the backlog should have brought up more than one worker pod"
    report("realnode_burst", {"jobs": n, "max_running_pods": max_running, **marks})
    app.close()


def test_scale_down_during_long_jobs_drains_them(
    chart: str,
    real_client: Any,
    real_kubectl: Any,
    real_namespace: str,
    pod_redis_url: str,
    images: dict[str, str],
) -> None:
    ns, api = real_namespace, Api(real_client)
    app = kubeq.App(pod_redis_url)
    long_s = 12.0
    api.create_tq(
        worker_tq(
            "drain",
            ns,
            pod_redis_url,
            images["worker"],
            concurrency=1,
            maxReplicas=4,
            jobsPerReplica=1,
        )
    )
    q = queue_of("drain", ns)
    t0 = time.monotonic()
    jobs = app.enqueue_many(
        kubeq.Call("e2e.work", (i,), {"seconds": long_s}, queue=q) for i in range(4)
    )

    def four_busy() -> bool:
        stats = app.queue(q).stats()
        return stats.backlog == 0 and stats.in_flight == 4 and stats.busy_workers == 4

    wait_for(four_busy, timeout=120, interval=0.25, message="4 pods each running a long job")
    busy_at = round(time.monotonic() - t0, 2)
    api.patch_tq(ns, "drain", {"spec": {"scaling": {"maxReplicas": 1}}})

    deleting: dict[str, float] = {}
    drain_logs: dict[str, str] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and app.redis.llen("e2e:runs") < 4:
        for p in api.pods(ns, "drain"):
            name = p.metadata.name
            if p.metadata.deletion_timestamp and name not in deleting:
                deleting[name] = time.time()
            if name in deleting and name not in drain_logs:
                out = real_kubectl("logs", "-n", ns, name)
                if "stop signal" in out.stdout:
                    drain_logs[name] = out.stdout
        time.sleep(0.2)

    assert [j.result(timeout=30) for j in jobs] == [0, 1, 2, 3]
    runs = [r.decode().split("|") for r in app.redis.lrange("e2e:runs", 0, -1)]
    assert sorted(int(r[0]) for r in runs) == [0, 1, 2, 3], f"a job ran twice: {runs}"
    assert len(deleting) == 3, f"maxReplicas 1 should remove 3 of 4 busy pods: {deleting}"
    ended_on = {r[1]: float(r[3]) for r in runs}
    for pod, at in deleting.items():
        assert pod in ended_on, f"deleted pod {pod} ran no job to its end: {runs}"
        assert ended_on[pod] > at, f"{pod}'s job ended before the pod was told to stop"
    assert drain_logs, "kubectl logs never showed a worker draining"
    for log in drain_logs.values():
        assert "stop signal: no new jobs; draining 1 running jobs" in log
    report(
        "realnode_drain",
        {"four_busy_s": busy_at, "drained_pods": sorted(deleting), "long_job_s": long_s},
    )
    app.close()


def test_an_evicted_worker_hands_its_job_back_without_counting_an_attempt(
    chart: str,
    real_client: Any,
    real_namespace: str,
    pod_redis_url: str,
    images: dict[str, str],
) -> None:
    ns, api, core = real_namespace, Api(real_client), client.CoreV1Api(real_client)
    app = kubeq.App(pod_redis_url)
    body = worker_tq(
        "evict",
        ns,
        pod_redis_url,
        images["worker"],
        concurrency=1,
        minReplicas=2,
        maxReplicas=2,
    )
    body["spec"]["worker"]["terminationGracePeriodSeconds"] = 8  # drains 3 s, then hands back
    api.create_tq(body)
    q = queue_of("evict", ns)
    wait_for(
        lambda: app.queue(q).stats().live_workers == 2,
        timeout=180,
        interval=0.5,
        message="two worker pods live",
    )
    # max_attempts=1: were the evicted run counted, the job would end failed, not run again
    (job,) = app.enqueue_many(
        [kubeq.Call("e2e.work", (7,), {"seconds": 25.0}, queue=q, max_attempts=1)]
    )
    wait_for(lambda: job.info().status == "active", timeout=60, message="the job running")
    pod = job.info().worker.split(":")[0]
    # the worker registers in Redis as soon as it starts; the kubelet reports the pod's phase
    # to the API server after that (its status sync lags under load): wait for it to say so
    wait_for(
        lambda: pod in {p.metadata.name for p in running_pods(core, ns, "evict")},
        timeout=60,
        interval=0.5,
        message=f"the API server to report {pod}, which runs the job, as Running",
    )
    t0 = time.monotonic()
    core.create_namespaced_pod_eviction(
        pod, ns, client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=ns))
    )
    assert job.result(timeout=180) == 7
    info = job.info()
    runs = [r.decode().split("|") for r in app.redis.lrange("e2e:runs", 0, -1)]
    mine = [r for r in runs if r[0] == "7"]
    assert len(mine) == 1 and mine[0][1] != pod, f"evicted on {pod}; runs: {mine}"
    # one attempt (the run that finished); the handed-back delivery is given back too: only
    # deliveries that never come back count toward max_deliveries
    assert (info.attempts, info.deliveries) == (1, 1), (info.attempts, info.deliveries)
    report(
        "realnode_evict",
        {"evicted": pod, "finished_on": mine[0][1], "done_s": round(time.monotonic() - t0, 1)},
    )
    app.close()
