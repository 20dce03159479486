"""The node tier: the kubeq image in real containers (podman + runc) and, with the real node,
real pods on a kubelet. Every test here is marked ``node``.

- ``kubeq_image`` (session): the image reference of the current tree, built by
  hack/image/build.sh when missing (a no-op of about a second when it is cached).
- ``containers``: starts containers through hack/image/podman.sh and removes them after.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from podmansupport import HERE, ROOT, Containers


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
