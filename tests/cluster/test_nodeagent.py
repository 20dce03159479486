"""The test node agent (the kubelet stand-in) runs pods the way kubeq's workers need.

Restart policies, exit phases, environment from Secrets/ConfigMaps/the downward API, and
SIGKILL after the grace period, all through the real API server.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from localcluster import ClusterInfo, read_pod_log
from localcluster.pytest_plugin import wait_for

pytestmark = pytest.mark.cluster


def make_pod(name: str, script: str, restart_policy: str, **spec: Any) -> client.V1Pod:
    pod = client.V1Pod.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "restartPolicy": restart_policy,
                "containers": [
                    {
                        "name": "main",
                        "image": "kubeq/unused",
                        "command": ["python", "-c", textwrap.dedent(script)],
                        **spec.pop("container", {}),
                    }
                ],
                **spec,
            },
        }
    )
    assert pod is not None
    return pod


def read_pod(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    return core.read_namespaced_pod(name, namespace)


def test_restart_policy_always_restarts_an_exiting_container(
    k8s_client: Any, k8s_namespace: str, local_cluster: ClusterInfo
) -> None:
    core = client.CoreV1Api(k8s_client)
    script = "import sys; print('attempt', flush=True); sys.exit(3)"
    core.create_namespaced_pod(k8s_namespace, make_pod("crasher", script, "Always"))

    def restarted_twice() -> Any:
        pod = read_pod(core, k8s_namespace, "crasher")
        statuses = pod.status.container_statuses or []
        return statuses and statuses[0].restart_count >= 2 and statuses[0]

    status = wait_for(restarted_twice, timeout=90, message="two restarts of pod crasher")
    assert status.last_state.terminated.exit_code == 3
    assert read_pod(core, k8s_namespace, "crasher").status.phase == "Running"
    log = read_pod_log(k8s_namespace, "crasher", "main", state_dir=Path(local_cluster.state_dir))
    assert log.count("attempt") >= 2


@pytest.mark.parametrize(("code", "phase"), [(0, "Succeeded"), (2, "Failed")])
def test_restart_policy_never_ends_in_a_terminal_phase(
    k8s_client: Any, k8s_namespace: str, code: int, phase: str
) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_pod(
        k8s_namespace, make_pod("once", f"import sys; sys.exit({code})", "Never")
    )

    def terminal() -> Any:
        pod = read_pod(core, k8s_namespace, "once")
        return pod.status.phase in ("Succeeded", "Failed") and pod

    pod = wait_for(terminal, message="pod once to finish")
    assert pod.status.phase == phase
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == code
    assert pod.status.container_statuses[0].restart_count == 0


def test_environment_from_values_secrets_configmaps_and_the_downward_api(
    k8s_client: Any, k8s_namespace: str, local_cluster: ClusterInfo
) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_secret(
        k8s_namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="creds"), string_data={"pw": "s3cr3t"}),
    )
    core.create_namespaced_config_map(
        k8s_namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings"), data={"QUEUE": "jobs", "N": "4"}
        ),
    )
    script = """
        import os
        for key in ("PLAIN", "EXPANDED", "PW", "QUEUE_NAME", "CFG_N", "POD", "NS", "APP"):
            print(f"{key}={os.environ.get(key)}")
        print(f"CWD={os.getcwd()}")
    """
    env = [
        {"name": "PLAIN", "value": "hello"},
        {"name": "EXPANDED", "value": "$(PLAIN)-world"},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}},
        {
            "name": "QUEUE_NAME",
            "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "QUEUE"}},
        },
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
    ]
    env_from = [{"prefix": "CFG_", "configMapRef": {"name": "settings"}}]
    pod = make_pod(
        "envpod",
        script,
        "Never",
        container={"env": env, "envFrom": env_from, "workingDir": "/tmp"},
    )
    core.create_namespaced_pod(k8s_namespace, pod)
    wait_for(
        lambda: read_pod(core, k8s_namespace, "envpod").status.phase == "Succeeded",
        message="pod envpod to succeed",
    )
    log = read_pod_log(k8s_namespace, "envpod", state_dir=Path(local_cluster.state_dir))
    for line in (
        "PLAIN=hello",
        "EXPANDED=hello-world",
        "PW=s3cr3t",
        "QUEUE_NAME=jobs",
        "CFG_N=4",
        "POD=envpod",
        f"NS={k8s_namespace}",
        "APP=envpod",
        "CWD=/tmp",
    ):
        assert line in log.splitlines(), log


def test_a_container_ignoring_sigterm_is_killed_after_the_grace_period(
    k8s_client: Any, k8s_namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(k8s_client)
    pid_file = tmp_path / "pid"
    script = f"""
        import os, pathlib, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
        while True:
            time.sleep(0.1)
    """
    pod = make_pod("stubborn", script, "Always", terminationGracePeriodSeconds=2)
    core.create_namespaced_pod(k8s_namespace, pod)
    wait_for(pid_file.exists, message="the pid file")
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}").exists()

    core.delete_namespaced_pod("stubborn", k8s_namespace)

    def pod_gone() -> bool:
        return not core.list_namespaced_pod(k8s_namespace).items

    wait_for(pod_gone, timeout=60, message="pod stubborn to be deleted")
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), message=f"pid {pid} to be killed")
