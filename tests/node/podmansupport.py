"""Running the kubeq image with podman from tests (hack/image/podman.sh: kubeq's settings and
image store)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PODMAN = str(ROOT / "hack" / "image" / "podman.sh")


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=check
    )


class Containers:
    """Names the containers a test starts, so teardown removes every one."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def run(self, image: str, *args: str, flags: tuple[str, ...] = ()) -> str:
        name = f"kubeq-test-{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        podman("run", "--detach", "--name", name, *flags, image, *args)
        return name

    def logs(self, name: str) -> str:
        out = podman("logs", name, check=False)
        return out.stdout + out.stderr

    def remove_all(self) -> None:
        for name in self.names:
            podman("rm", "--force", "--time", "0", name, check=False)
