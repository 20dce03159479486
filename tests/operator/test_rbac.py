"""The RBAC of the plain-YAML install (manifests/kubeq.yaml, rendered from the chart in its
cluster-wide mode) is enough for the operator: run it with a token of its service account
(its own module, so no other operator serves the same objects)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, install_crd, queue_of, taskqueue

pytestmark = pytest.mark.cluster


def test_operator_runs_with_only_its_rbac(
    local_cluster: Any,
    kubectl: Any,
    api: Api,
    k8s_namespace: str,
    redis_url: str,
    tmp_path: Any,
) -> None:
    """The install's RBAC is enough: run the operator as its service account."""
    install_crd(kubectl)
    docs = yaml.safe_load_all(Path("manifests/kubeq.yaml").read_text())
    wanted = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    rbac = [d for d in docs if d and d["kind"] in wanted]  # not the operator Deployment itself
    assert {d["kind"] for d in rbac} == wanted
    r = kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    assert r.returncode == 0, r.stderr
    token = kubectl("-n", "kubeq-system", "create", "token", "kubeq", check=True).stdout
    admin = yaml.safe_load(Path(local_cluster.kubeconfig).read_text())
    cluster = admin["clusters"][0]
    kubeconfig = tmp_path / "sa.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "sa", "user": {"token": token.strip()}}],
                "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    op = OperatorProcess(str(kubeconfig), tmp_path / "operator.log", "-n", k8s_namespace)
    try:
        op.wait_ready()
        import kubeq

        app = kubeq.App(redis_url)
        q = queue_of("rbac", k8s_namespace)
        app.enqueue_many([kubeq.Call("e2e.work", (1,), queue=q)])
        # a Job-mode pool too: the operator lists, creates (and may delete) batch/v1 Jobs
        pools = [{"name": "j", "mode": "Job"}]
        api.create_tq(taskqueue("rbac", k8s_namespace, redis_url, pools=pools))
        wait_for(
            lambda: (
                (d := api.deployment(k8s_namespace, "rbac-worker")) is not None
                and (d.spec.replicas or 0) > 0
            ),
            timeout=60,
            message=lambda: "scaled Deployment; operator log:\n" + op.log()[-3000:],
        )
        wait_for(lambda: app.redis.llen("e2e:runs") == 1, timeout=60, message="the job ran")
        pooled = kubeq.App(redis_url)  # its own cache of the published pools
        key = f"{kubeq.defaults.PREFIX}:pools"
        wait_for(lambda: app.redis.hget(key, q), timeout=60, message="pools published")
        pooled.enqueue_many([kubeq.Call("e2e.work", (2,), queue=q, worker_pool="j")])
        pooled.close()
        wait_for(lambda: app.redis.llen("e2e:runs") == 2, timeout=90, message="the Job ran")
        # a refusal's status code as a word (a namespace's random suffix may hold the digits)
        refused = "Forbidden" in op.log() or re.search(r"\b403\b", op.log())
        assert not refused, op.log()[-3000:]
        api.delete_tq(k8s_namespace, "rbac")
        wait_for(
            lambda: (
                not api.custom.list_namespaced_custom_object(
                    "kubeq.dev", "v1alpha1", k8s_namespace, "taskqueues"
                )["items"]
            ),
            timeout=60,
            message="TaskQueue deleted (finalizer removed)",
        )
        app.close()
    finally:
        assert op.stop() == 0
