"""The node tier: the kubeq image in real containers (podman + runc) and, with the real node,
real pods on a kubelet. Every test here is marked ``node``.

- ``kubeq_image`` (session): the image reference of the current tree, built by
  hack/image/build.sh when missing (a no-op of about a second when it is cached).
- ``containers``: starts containers through hack/image/podman.sh and removes them after.
- ``real_cluster`` (session) and ``real_client``, ``real_kubectl``, ``real_namespace``,
  ``node_image``: the control plane with a real node (hack/cluster/localcluster/realnode.py),
  in ``.cluster-real/``, beside the node agent's cluster of the other tiers.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster import ClusterError, ClusterInfo, down, missing_binaries, realnode, up
from localcluster.pytest_plugin import Kubectl, api_client_for, fresh_namespace, kubectl_for
from tests.node.podmansupport import HERE, ROOT, Containers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents and not item.get_closest_marker("node"):
            item.add_marker(pytest.mark.node)


@pytest.fixture(scope="session")
def kubeq_image() -> str:
    build = subprocess.run(
        ["bash", str(ROOT / "hack" / "image" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"`make image` failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}")
    return build.stdout.strip().splitlines()[-1]


@pytest.fixture
def containers() -> Iterator[Containers]:
    made = Containers()
    yield made
    made.remove_all()


@pytest.fixture(scope="session")
def real_cluster() -> Iterator[ClusterInfo]:
    """The local control plane with a real node (containerd + kubelet + kube-proxy), started
    for the session unless `make cluster-up NODE=real` already runs it; stopped after."""
    missing = missing_binaries()
    if missing:
        pytest.fail(
            f"Kubernetes binaries missing: {', '.join(missing)}; run `make cluster-bin`",
            pytrace=False,
        )
    try:
        info, started = up(node="real")
    except ClusterError as e:
        pytest.fail(f"could not start the cluster with a real node: {e}", pytrace=False)
    yield info
    if started and not os.environ.get("KUBEQ_KEEP_CLUSTER"):
        down(Path(info.state_dir), node="real")


@pytest.fixture(scope="session")
def real_client(real_cluster: ClusterInfo) -> Iterator[Any]:
    api_client = api_client_for(real_cluster)
    yield api_client
    api_client.close()


@pytest.fixture(scope="session")
def real_kubectl(real_cluster: ClusterInfo) -> Kubectl:
    return kubectl_for(real_cluster)


@pytest.fixture
def real_namespace(real_client: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace on the real-node cluster (its default service account exists)."""
    yield from fresh_namespace(real_client, request)


@pytest.fixture(scope="session")
def node_image(real_cluster: ClusterInfo) -> Callable[[str], str]:
    """load(ref) -> ref: the image copied from kubeq's podman store into the node's
    containerd (once per session and image)."""
    loaded: set[str] = set()

    def load(ref: str) -> str:
        if ref not in loaded:
            realnode.load_image(ref)
            loaded.add(ref)
        return ref

    return load
