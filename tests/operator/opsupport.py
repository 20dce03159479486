"""Helpers for the tests that run the operator against the local cluster (cluster and e2e).

``OperatorProcess`` runs the real operator (``python -m kubeq_operator``, what
``kubeq operator`` runs) as a subprocess with the cluster's kubeconfig; ``install_crd``
applies the CRD; ``taskqueue`` builds a TaskQueue manifest whose worker pods run
``kubeq worker e2e_tasks`` from tests/e2e (on PYTHONPATH) against the test Redis;
``kubeconfig_via`` points a kubeconfig at a proxy in front of the API server (the
``apiserver_proxy`` fixture, tests/operator/conftest.py) and ``healthz`` reads the operator's
liveness endpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeq_operator.crd import API_VERSION, CRD_NAME, GROUP, KIND, LABEL_TASKQUEUE, PLURAL, VERSION
from kubeq_operator.names import taskqueue_label
from tests.support.redisserver import free_port

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "crd" / f"{CRD_NAME}.yaml"
E2E_DIR = ROOT / "tests" / "e2e"


def kubeconfig_via(kubeconfig: str, port: int, path: Path) -> Path:
    """A copy of ``kubeconfig`` that reaches the API server through 127.0.0.1:``port`` (a
    proxy in front of it; the server's certificate is valid for 127.0.0.1)."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(config))
    return path


def healthz(port: int) -> tuple[int, str]:
    """The status and body of the operator's /healthz on ``port``. A refused or dropped
    connection raises: the liveness endpoint must answer, 200 or 500, whatever else is down."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=20) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode(errors="replace")


def install_crd(kubectl: Any) -> None:
    kubectl("apply", "-f", str(CRD), check=True)
    kubectl(
        "wait",
        "--for",
        "condition=established",
        f"crd/{CRD_NAME}",
        "--timeout=60s",
        check=True,
    )


class OperatorProcess:
    """The operator as a child process; ``stop()`` sends SIGTERM (then SIGKILL)."""

    def __init__(
        self, kubeconfig: str, log_path: Path, *extra: str, python_args: tuple[str, ...] = ()
    ) -> None:
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        self.log_path = log_path
        env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONUNBUFFERED": "1"}
        env.pop("KUBEQ_REDIS_PASSWORD", None)
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *python_args,
                "-m",
                "kubeq_operator",
                "--metrics-port",
                str(self.metrics_port),
                "--liveness",
                f"http://127.0.0.1:{self.liveness_port}/healthz",
                *extra,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        """Until kopf's liveness endpoint answers (its loop runs and handles SIGTERM)."""
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the operator exited: {self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
                ):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the operator is not ready after {timeout} s: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return int(self.proc.returncode)


def queue_of(name: str, namespace: str) -> str:
    """The queue ``taskqueue()`` gives a TaskQueue (unique per test namespace)."""
    return f"q-{namespace}-{name}"[:128]


def taskqueue(
    name: str,
    namespace: str,
    redis_url: str,
    *,
    scaling: dict[str, Any] | None = None,
    worker: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "redis": {"url": redis_url},
            "queues": [queue_of(name, namespace)],  # tests share one Redis
            "worker": {
                "image": "local",
                "tasks": "e2e_tasks",
                "concurrency": 4,
                "terminationGracePeriodSeconds": 30,
                "env": [{"name": "PYTHONPATH", "value": str(E2E_DIR)}],
                **(worker or {}),
            },
            "scaling": {
                "minReplicas": 0,
                "maxReplicas": 5,
                "pollSeconds": 0.5,
                "idleSecondsBeforeZero": 5,
                "scaleDown": {"stabilizationSeconds": 5, "periodSeconds": 1, "maxPodsPerStep": 5},
                **(scaling or {}),
            },
            **spec,
        },
    }


class Api:
    """Thin wrappers over the kubernetes client for the tests."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.client = api_client
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def create_tq(self, body: dict[str, Any]) -> dict[str, Any]:
        ns = body["metadata"]["namespace"]
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, body
        )
        return result

    def get_tq(self, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
        return result

    def patch_tq(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )

    def delete_tq(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def deployment(self, namespace: str, name: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.apps.read_namespaced_deployment(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def pods(self, namespace: str, taskqueue: str) -> list[Any]:
        return list(
            self.core.list_namespaced_pod(
                namespace, label_selector=f"{LABEL_TASKQUEUE}={taskqueue_label(taskqueue)}"
            ).items
        )

    def condition(self, namespace: str, name: str, type_: str) -> dict[str, Any] | None:
        for c in self.get_tq(namespace, name).get("status", {}).get("conditions", []):
            if c["type"] == type_:
                return dict(c)
        return None

    def events(self, namespace: str, name: str) -> list[Any]:
        items = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name},involvedObject.kind={KIND}"
        ).items
        return sorted(items, key=lambda e: e.metadata.creation_timestamp)


class Timeline:
    """Timestamps of named moments, relative to the first one, for the closing report."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, round(time.monotonic() - self.t0, 2))


@pytest.fixture(scope="module")
def operator(
    local_cluster: Any, kubectl: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator process for a test module (CRD installed first)."""
    install_crd(kubectl)
    log: Path = tmp_path_factory.mktemp("operator") / "operator.log"
    op = OperatorProcess(local_cluster.kubeconfig, log)
    op.wait_ready()
    yield op
    # delete what the tests left while the operator still runs (it removes its finalizers)
    kubectl("delete", PLURAL, "--all", "--all-namespaces", "--wait=true", "--timeout=90s")
    code = op.stop()
    print(f"\n--- operator log tail ({log}) ---\n" + "\n".join(op.log().splitlines()[-40:]))
    assert code == 0, "the operator did not exit cleanly on SIGTERM"


@pytest.fixture(scope="session")
def api(k8s_client: Any) -> Api:
    return Api(k8s_client)
