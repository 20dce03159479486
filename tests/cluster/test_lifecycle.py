"""`python -m localcluster up` then `down` (what `make cluster-up/down` run) leave nothing behind.

Runs a second, private cluster in a temporary state dir so the session's cluster is untouched:
``up`` must come back with a usable cluster, and ``down`` must stop every component and the
processes of the pods that were running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localcluster import bin_dir, missing_binaries
from localcluster.paths import HACK_DIR
from localcluster.procs import ProcRef
from localcluster.pytest_plugin import wait_for

pytestmark = pytest.mark.cluster


def localcluster(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBEQ_CLUSTER_DIR=str(state_dir))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HACK_DIR), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "localcluster", *args],
        check=False,
        env=env,
        text=True,
        capture_output=True,
        timeout=280,
    )


def test_up_then_down_leaves_no_process_behind(tmp_path: Path) -> None:
    if missing_binaries():
        pytest.fail(f"binaries missing in {bin_dir()}: run `make cluster-bin`", pytrace=False)
    state = tmp_path / "cluster"
    components: list[ProcRef | None] = []
    pod_pid = 0
    try:
        up = localcluster(state, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        status = localcluster(state, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert json.loads(status.stdout)["ready"] is True

        components = [ProcRef.load(p) for p in sorted((state / "run").glob("*.pid"))]
        assert len(components) == 5
        assert all(ref is not None and ref.alive() for ref in components)

        pid_file = tmp_path / "pod.pid"
        script = f"import os,time; open({str(pid_file)!r},'w').write(str(os.getpid())); "
        script += "time.sleep(3600)"
        kubectl = subprocess.run(
            [str(bin_dir() / "kubectl"), "run", "sleeper", "--image=unused", "--restart=Never",
             "--command", "--", "python", "-c", script],
            env=dict(os.environ, KUBECONFIG=str(state / "kubeconfig")),
            text=True,
            capture_output=True,
            check=False,
        )  # fmt: skip
        assert kubectl.returncode == 0, kubectl.stderr
        wait_for(pid_file.exists, timeout=60, message="the pod's process")
        pod_pid = int(pid_file.read_text())
        assert Path(f"/proc/{pod_pid}").exists()
    finally:
        down = localcluster(state, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    for ref in components:
        assert ref is not None
        assert not ref.alive(), f"{ref.name} (pid {ref.pid}) survived down"
    assert pod_pid
    wait_for(lambda: not Path(f"/proc/{pod_pid}").exists(), timeout=10, message="pod to stop")
    assert not list((state / "run").rglob("*.pid"))
    assert localcluster(state, "status").returncode != 0
