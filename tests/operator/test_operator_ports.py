"""A port the operator needs already in use is one clear error and a
non-zero exit, at once (it used to be a start-up activity retried every 60 s with a
traceback). The real ``python -m kubeq_operator`` process; no API server is needed, since
the ports are checked before anything talks to one."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest


def run_operator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubeq_operator", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": "/nonexistent"},
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.create_server(("0.0.0.0", 0)) as s:
        yield s.getsockname()[1]


def test_metrics_port_in_use(taken_port: int) -> None:
    r = run_operator("--metrics-port", str(taken_port), "--liveness", "")
    assert r.returncode == 2, r.stderr
    assert f"cannot serve metrics on port {taken_port}" in r.stderr
    assert "--metrics-port" in r.stderr
    assert "Traceback" not in r.stderr


def test_liveness_port_in_use(taken_port: int) -> None:
    url = f"http://127.0.0.1:{taken_port}/healthz"
    r = run_operator("--metrics-port", "0", "--liveness", url)
    assert r.returncode == 2, r.stderr
    assert f"cannot serve --liveness {url}" in r.stderr
    assert "Traceback" not in r.stderr
