"""`helm install` on the local control plane: the operator pod runs (through the test node
agent, with its service account's token and only the chart's RBAC), a TaskQueue's jobs are
drained by worker pods it scales up, `helm test` passes, and `helm uninstall` leaves only the
CRD behind, as NOTES.txt says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import kubeq
from localcluster.cluster import ClusterInfo
from localcluster.podruns import read_pod_log
from localcluster.pytest_plugin import wait_for
from tests.support.redisserver import free_port

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubeq"

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.timeout(600)]


def test_helm_install_runs_the_operator_drains_jobs_and_uninstalls_cleanly(
    local_cluster: ClusterInfo, kubectl: Any, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    env = local_cluster.kubectl_env()
    helm_bin = str(Path(local_cluster.bin_dir) / "helm")

    def helm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [helm_bin, *args, "--namespace", ns],
            env=env,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    metrics_port, health_port = free_port(), free_port()
    installed = helm(
        "install",
        "kq",
        str(CHART),
        "--wait",
        "--timeout",
        "180s",
        "--set",
        "rbac.scope=namespaced",
        "--set",
        f"operator.metricsPort={metrics_port}",
        "--set",
        f"operator.healthPort={health_port}",
        "--set",
        "tests.operatorHost=127.0.0.1",
        # the test node agent runs pods on the host's network, where two operator pods would
        # want the same ports: one replica, still peered (the chart's peering object and RBAC)
        "--set",
        "operator.replicas=1",
    )
    assert installed.returncode == 0, installed.stderr
    assert "kubectl get taskqueues" in installed.stdout  # NOTES.txt

    def operator_log() -> str:
        pods = json.loads(
            kubectl(
                "get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=operator", "-o", "json"
            ).stdout
        )
        names = [p["metadata"]["name"] for p in pods["items"]]
        return "".join(
            read_pod_log(ns, n, state_dir=Path(local_cluster.state_dir)) or "" for n in names
        )

    tasks_dir = ROOT / "examples" / "01-quickstart"
    taskqueue = {
        "apiVersion": "kubeq.dev/v1alpha1",
        "kind": "TaskQueue",
        "metadata": {"name": "thumbs", "namespace": ns},
        "spec": {
            "redis": {"url": redis_url, "prefix": f"helm-{ns}"},
            "queues": ["default"],
            "worker": {
                "image": "local/quickstart-worker:dev",
                "tasks": "tasks",
                "concurrency": 8,
                "env": [{"name": "PYTHONPATH", "value": str(tasks_dir)}],
                "terminationGracePeriodSeconds": 10,
            },
            "scaling": {
                "minReplicas": 0,
                "maxReplicas": 2,
                "pollSeconds": 1,
                "idleSecondsBeforeZero": 5,
                "scaleDown": {"stabilizationSeconds": 5, "periodSeconds": 1},
            },
        },
    }
    applied = kubectl("apply", "-f", "-", input=yaml.safe_dump(taskqueue))
    assert applied.returncode == 0, applied.stderr + operator_log()

    app = kubeq.App(redis_url, prefix=f"helm-{ns}")
    import sys

    sys.path.insert(0, str(tasks_dir))
    try:
        import tasks as quickstart
    finally:
        sys.path.remove(str(tasks_dir))
    jobs = app.enqueue_many([quickstart.make_thumbnail.s(i, 128) for i in range(100)])
    try:
        results = [job.result(timeout=240) for job in jobs]
    except kubeq.ResultTimeout:
        pytest.fail("jobs not drained; operator log:\n" + operator_log()[-4000:])
    assert [r["photo"] for r in results] == list(range(100))

    tested = helm("test", "kq", timeout=180)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Succeeded" in tested.stdout

    deleted = kubectl("delete", "taskqueue", "thumbs", "-n", ns, "--wait=true", "--timeout=120s")
    assert deleted.returncode == 0, deleted.stderr + operator_log()[-3000:]
    uninstalled = helm("uninstall", "kq", "--wait", "--timeout", "120s")
    assert uninstalled.returncode == 0, uninstalled.stderr

    def leftovers() -> list[str]:
        out = kubectl(
            "get",
            "deployments,replicasets,pods,services,serviceaccounts,roles,"
            "rolebindings,configmaps,secrets",
            "-n",
            ns,
            "-l",
            "app.kubernetes.io/instance=kq",
            "-o",
            "name",
        )
        cluster = kubectl(
            "get",
            "clusterroles,clusterrolebindings",
            "-l",
            "app.kubernetes.io/instance=kq",
            "-o",
            "name",
        )
        workers = kubectl(
            "get", "deployments,pods", "-n", ns, "-l", "kubeq.dev/taskqueue=thumbs", "-o", "name"
        )
        return (out.stdout + cluster.stdout + workers.stdout).split()

    wait_for(
        lambda: not leftovers(),
        timeout=120,
        interval=0.5,
        message="everything of the release to be gone",
    )
    crd = kubectl("get", "crd", "taskqueues.kubeq.dev")
    assert crd.returncode == 0  # kept on purpose: uninstalling must not delete TaskQueues
