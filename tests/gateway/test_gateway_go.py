"""The Go client (clients/go) through the gateway: its job runs on a real Python worker and
the result comes back to it over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.gateway.conftest import World
from tests.gateway.gwsupport import KUBEQ
from tests.protocol.conftest import ROOT
from tests.redis.workers import HERE as QTASKS_DIR


def test_a_go_service_enqueues_through_the_gateway_and_gets_its_result(
    world: World, tmp_path: Path
) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain is needed for clients/go", pytrace=False)
    demo = tmp_path / "kubeq-gateway-demo"
    built = subprocess.run(
        [go, "build", "-o", str(demo), "./cmd/kubeq-gateway-demo"],
        cwd=ROOT / "clients" / "go",
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    token_file = tmp_path / "token"
    token_file.write_text(world.token("alice"))
    worker = subprocess.Popen(
        [KUBEQ, "worker", "qtasks", "--queue", world.queue("tq-a")],
        env={**os.environ, "KUBEQ_REDIS_URL": world.redis_url, "PYTHONPATH": str(QTASKS_DIR)},
        cwd=QTASKS_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        gateway_url = f"http://127.0.0.1:{world.gateway.port}"
        done = subprocess.run(
            [str(demo), gateway_url, world.namespace, "tq-a", "qtasks.add", "[40, 2]"],
            env={**os.environ, "KUBEQ_TOKEN_FILE": str(token_file)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        worker.kill()
        worker.wait()
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["outcome"]["status"] == "finished", reply
    assert reply["outcome"]["result"] == 42
    assert reply["ref"]["queue"] == world.queue("tq-a")
