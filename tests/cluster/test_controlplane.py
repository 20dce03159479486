"""The local control plane behaves like Kubernetes where kubeq relies on it.

Real API server, controller manager, scheduler and the test node agent; no mocks. These are
the behaviours the kubeq operator builds on: Deployments become processes, scale-down sends
SIGTERM to the surplus, the ReplicaSet controller honours pod-deletion-cost, owners take
their dependents with them, and the API server refuses malformed manifests.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcluster import ClusterInfo, read_pod_log
from localcluster.pytest_plugin import Kubectl, wait_for

pytestmark = pytest.mark.cluster

MERGE_PATCH = "application/merge-patch+json"

# A container that records its pid, and on SIGTERM records a marker and exits.
WORKER = textwrap.dedent(
    """
    import os, pathlib, signal, sys, time
    out = pathlib.Path(sys.argv[1])
    name = os.environ["POD_NAME"]
    def on_term(signum, frame):
        (out / (name + ".term")).write_text(str(os.getpid()))
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    (out / (name + ".pid")).write_text(str(os.getpid()))
    print("worker", name, "pid", os.getpid(), flush=True)
    while True:
        time.sleep(0.1)
    """
)


def deployment(name: str, replicas: int, out_dir: Path) -> client.V1Deployment:
    labels = {"app": name}
    manifest = client.V1Deployment.from_dict(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 10,
                        "containers": [
                            {
                                "name": "worker",
                                "image": "kubeq/test-worker:unused",
                                "command": ["python", "-c", WORKER, str(out_dir)],
                                "env": [
                                    {
                                        "name": "POD_NAME",
                                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                    }
                                ],
                            }
                        ],
                    },
                },
            },
        }
    )
    assert manifest is not None
    return manifest


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def running_pods(core: client.CoreV1Api, namespace: str, app: str) -> list[Any]:
    pods: list[Any] = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def all_ready(core: client.CoreV1Api, namespace: str, app: str, count: int) -> bool:
    pods = running_pods(core, namespace, app)
    if len(pods) != count:
        return False
    for pod in pods:
        conditions = {c.type: c.status for c in (pod.status.conditions or [])}
        if pod.status.phase != "Running" or conditions.get("Ready") != "True":
            return False
    return True


def scale(apps: client.AppsV1Api, namespace: str, name: str, replicas: int) -> None:
    apps.patch_namespaced_deployment_scale(
        name, namespace, {"spec": {"replicas": replicas}}, _content_type=MERGE_PATCH
    )


def markers(out: Path, suffix: str) -> dict[str, int]:
    return {p.name.removesuffix(suffix): int(p.read_text()) for p in out.glob(f"*{suffix}")}


def pod_names(core: client.CoreV1Api, namespace: str) -> set[str]:
    pods: list[Any] = core.list_namespaced_pod(namespace).items
    return {p.metadata.name for p in pods}


def wait_for_pids(out: Path, count: int) -> dict[str, int]:
    def check() -> dict[str, int] | None:
        found = markers(out, ".pid")
        return found if len(found) == count else None

    return wait_for(check, message=f"{count} pid files in {out}")


def wait_until_exited(pid: int) -> None:
    wait_for(lambda: not pid_alive(pid), message=f"pid {pid} to exit")


def pods_gone(core: client.CoreV1Api, namespace: str, names: set[str]) -> Callable[[], bool]:
    def check() -> bool:
        return not names & pod_names(core, namespace)

    return check


def test_deployment_becomes_processes_and_scale_down_sends_sigterm(
    k8s_client: Any, k8s_namespace: str, tmp_path: Path, local_cluster: ClusterInfo
) -> None:
    apps, core = client.AppsV1Api(k8s_client), client.CoreV1Api(k8s_client)
    apps.create_namespaced_deployment(k8s_namespace, deployment("workers", 3, tmp_path))

    wait_for(lambda: all_ready(core, k8s_namespace, "workers", 3), message="3 ready pods")
    pids = wait_for_pids(tmp_path, 3)
    pods = {p.metadata.name: p for p in running_pods(core, k8s_namespace, "workers")}
    assert set(pids) == set(pods)
    for name, pid in pids.items():
        assert pid_alive(pid), f"process of {name} is not running"
        status = pods[name].status.container_statuses[0]
        assert status.container_id == f"localcluster://{pid}"
        assert status.ready and status.state.running is not None
        assert pods[name].status.pod_ip == "127.0.0.1"
    assert not markers(tmp_path, ".term")

    scale(apps, k8s_namespace, "workers", 1)
    wait_for(
        lambda: len(markers(tmp_path, ".term")) == 2 and len(pod_names(core, k8s_namespace)) == 1,
        message=lambda: f"2 SIGTERMed pods, got markers {markers(tmp_path, '.term')}",
    )
    terminated = markers(tmp_path, ".term")
    survivor = set(pids) - set(terminated)
    assert len(survivor) == 1
    (survivor_name,) = survivor
    for name, pid in terminated.items():
        assert pid == pids[name]
        wait_until_exited(pid)
    assert pid_alive(pids[survivor_name])
    assert pod_names(core, k8s_namespace) == {survivor_name}
    state_dir = Path(local_cluster.state_dir)
    log = read_pod_log(k8s_namespace, survivor_name, "worker", state_dir=state_dir)
    assert f"worker {survivor_name} pid {pids[survivor_name]}" in log


def test_replicaset_honours_pod_deletion_cost(
    k8s_client: Any, k8s_namespace: str, tmp_path: Path
) -> None:
    apps, core = client.AppsV1Api(k8s_client), client.CoreV1Api(k8s_client)
    apps.create_namespaced_deployment(k8s_namespace, deployment("costly", 4, tmp_path))
    wait_for(lambda: all_ready(core, k8s_namespace, "costly", 4), message="4 ready pods")

    # Without the annotation the ReplicaSet controller removes the newest pods first; give the
    # newest the highest cost so that only pod-deletion-cost explains the right outcome.
    pods = running_pods(core, k8s_namespace, "costly")
    pods.sort(key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))
    costs = {p.metadata.name: (i + 1) * 100 for i, p in enumerate(pods)}
    for name, cost in costs.items():
        core.patch_namespaced_pod(
            name,
            k8s_namespace,
            {
                "metadata": {
                    "annotations": {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
                }
            },
            _content_type=MERGE_PATCH,
        )
    by_cost = sorted(costs, key=costs.__getitem__)

    scale(apps, k8s_namespace, "costly", 2)
    wait_for(pods_gone(core, k8s_namespace, set(by_cost[:2])), message="the 2 cheapest pods to go")
    remaining = {p.metadata.name for p in running_pods(core, k8s_namespace, "costly")}
    assert remaining == set(by_cost[2:])

    scale(apps, k8s_namespace, "costly", 1)
    wait_for(pods_gone(core, k8s_namespace, {by_cost[2]}), message="the next cheapest pod to go")
    remaining = {p.metadata.name for p in running_pods(core, k8s_namespace, "costly")}
    assert remaining == {by_cost[3]}
    assert set(markers(tmp_path, ".term")) == set(by_cost[:3])


def test_deleting_a_deployment_collects_its_replicasets_and_pods(
    k8s_client: Any, k8s_namespace: str, tmp_path: Path
) -> None:
    apps, core = client.AppsV1Api(k8s_client), client.CoreV1Api(k8s_client)
    apps.create_namespaced_deployment(k8s_namespace, deployment("owned", 2, tmp_path))
    wait_for(lambda: all_ready(core, k8s_namespace, "owned", 2), message="2 ready pods")
    pids = wait_for_pids(tmp_path, 2)
    assert len(apps.list_namespaced_replica_set(k8s_namespace).items) == 1

    apps.delete_namespaced_deployment("owned", k8s_namespace, propagation_policy="Background")
    wait_for(
        lambda: (
            not apps.list_namespaced_replica_set(k8s_namespace).items
            and not pod_names(core, k8s_namespace)
        ),
        message="the ReplicaSet and its pods to be garbage-collected",
    )
    for pid in pids.values():
        wait_until_exited(pid)
    assert set(markers(tmp_path, ".term")) == set(pids)


def test_deleting_an_owner_configmap_collects_the_owned_one(
    k8s_client: Any, k8s_namespace: str
) -> None:
    core = client.CoreV1Api(k8s_client)
    owner: Any = core.create_namespaced_config_map(
        k8s_namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"k": "v"}),
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        k8s_namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owned", owner_references=[ref])),
    )
    core.delete_namespaced_config_map("owner", k8s_namespace)

    def owned_gone() -> bool:
        try:
            core.read_namespaced_config_map("owned", k8s_namespace)
        except ApiException as e:
            return bool(e.status == 404)
        return False

    wait_for(owned_gone, message="configmap 'owned' to be garbage-collected")


def bad_manifest(namespace: str, replicas: object, extra: dict[str, object]) -> str:
    spec: dict[str, object] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "bad"}},
        "template": {
            "metadata": {"labels": {"app": "bad"}},
            "spec": {"containers": [{"name": "c", "image": "x", "command": ["true"]}]},
        },
        **extra,
    }
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": spec,
    }
    return json.dumps(manifest)


def test_server_side_dry_run_rejects_a_wrongly_typed_field(
    kubectl: Kubectl, k8s_namespace: str
) -> None:
    # --validate=false: kubectl checks nothing itself, the API server must refuse.
    result = kubectl(
        "apply", "--dry-run=server", "--validate=false", "-f", "-",
        input=bad_manifest(k8s_namespace, "three", {}),
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert "spec.replicas" in result.stderr, result.stderr
    assert "Error from server" in result.stderr, result.stderr


def test_server_side_dry_run_rejects_an_unknown_field_with_strict_validation(
    kubectl: Kubectl, k8s_namespace: str
) -> None:
    result = kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-",
        input=bad_manifest(k8s_namespace, 1, {"replicaz": 2}),
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert "replicaz" in result.stderr, result.stderr

    ok = kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-",
        input=bad_manifest(k8s_namespace, 1, {}),
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "(server dry run)" in ok.stdout
    assert kubectl("get", "deployment", "bad", "-n", k8s_namespace).returncode != 0
