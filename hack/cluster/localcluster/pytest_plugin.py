"""pytest fixtures for tests that need the local Kubernetes cluster (tests/cluster, tests/e2e).

Use from a conftest.py (``pytest_plugins`` only works in the rootdir conftest, so import the
fixtures instead)::

    sys.path.insert(0, str(REPO_ROOT / "hack" / "cluster"))
    from localcluster.pytest_plugin import (  # noqa: F401  (or list them in __all__)
        cluster_kubeconfig, k8s_client, k8s_namespace, kubectl, local_cluster,
    )

``local_cluster`` (session) starts the cluster unless one already runs for this checkout
(e.g. after ``make cluster-up``) and stops, at session end, only what it started
(set ``KUBEQ_KEEP_CLUSTER=1`` to keep it). Missing binaries make it *fail*, not skip: run
``make cluster-bin`` (``make test`` does).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .cluster import ClusterError, ClusterInfo, down, up
from .paths import bin_dir, missing_binaries

T = TypeVar("T")

#: kubectl(*args, input=None, check=False) -> CompletedProcess with text output.
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    interval: float = 0.2,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned); fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {text}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[ClusterInfo]:
    """The running local cluster (started for the session if needed)."""
    missing = missing_binaries()
    if missing:
        pytest.fail(
            f"local Kubernetes binaries missing in {bin_dir()}: {', '.join(missing)}; "
            "build them with `make cluster-bin` (hack/cluster/build.sh)",
            pytrace=False,
        )
    try:
        info, started = up()
    except ClusterError as e:
        pytest.fail(f"could not start the local cluster: {e}", pytrace=False)
    yield info
    if started and not os.environ.get("KUBEQ_KEEP_CLUSTER"):
        down(Path(info.state_dir))


@pytest.fixture(scope="session")
def cluster_kubeconfig(local_cluster: ClusterInfo) -> str:
    """Path of the admin kubeconfig of the local cluster."""
    return local_cluster.kubeconfig


def api_client_for(info: ClusterInfo) -> Any:
    """A ``kubernetes.client.ApiClient`` with the admin credentials of ``info``'s cluster."""
    from kubernetes import config

    return config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=info.kubeconfig, persist_config=False
    )


def kubectl_for(info: ClusterInfo) -> Kubectl:
    """Run the built kubectl against ``info``'s cluster."""
    env = info.kubectl_env()
    exe = str(Path(info.bin_dir) / "kubectl")

    def run(*args: str, input: str | None = None, check: bool = False) -> Any:
        return subprocess.run(
            [exe, *args], input=input, text=True, capture_output=True, env=env, check=check
        )

    return run


@pytest.fixture(scope="session")
def k8s_client(local_cluster: ClusterInfo) -> Iterator[Any]:
    """A ``kubernetes.client.ApiClient`` for the local cluster (admin credentials)."""
    client = api_client_for(local_cluster)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def kubectl(local_cluster: ClusterInfo) -> Kubectl:
    """Run the built kubectl against the local cluster."""
    return kubectl_for(local_cluster)


def fresh_namespace(api_client: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """Create a namespace named after the test, wait for its default service account (pods
    need it), yield its name, delete it."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base or 't'}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    def has_default_sa() -> bool:
        items = core.list_namespaced_service_account(name, field_selector="metadata.name=default")
        return bool(items.items)

    wait_for(has_default_sa, timeout=60, message=f"service account {name}/default")
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def k8s_namespace(k8s_client: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (ready for pods: its default service account exists), then deleted."""
    yield from fresh_namespace(k8s_client, request)
