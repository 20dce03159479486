"""Running the kubeq image with podman from tests (hack/image/podman.sh: kubeq's settings and
image store)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
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


CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def derived_image(name: str, base: str, containerfile: str, files: dict[str, Path]) -> str:
    """An image built ``FROM base`` (the Containerfile gets ``ARG BASE``), tagged by a hash of
    everything that goes in, so an unchanged one is reused. ``files``: name in the build
    context -> file to copy there."""
    digest = hashlib.sha256(f"{base}\n{containerfile}".encode())
    for arc, path in sorted(files.items()):
        digest.update(arc.encode() + b"\0" + path.read_bytes())
    ref = f"localhost/kubeq-{name}:{digest.hexdigest()[:12]}"
    if podman("image", "exists", ref, check=False).returncode == 0:
        return ref
    with tempfile.TemporaryDirectory() as ctx:
        for arc, path in files.items():
            shutil.copy(path, Path(ctx) / arc)
        (Path(ctx) / "Containerfile").write_text(containerfile)
        mount = ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.exists() else []
        podman(
            "build", "--network", "host", *mount, "--build-arg", f"BASE={base}",
            "--tag", ref, "--file", str(Path(ctx) / "Containerfile"), ctx,
            timeout=900,
        )  # fmt: skip
    return ref
