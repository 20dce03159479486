"""examples/07-human-approval run as its README says: a real `kubeq worker`, the request
script, `kubeq job` while it waits, and `kubeq signal` to approve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "examples" / "07-human-approval"
KUBEQ = str(Path(sys.executable).with_name("kubeq"))

pytestmark = pytest.mark.redis


def _run(url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBEQ_REDIS_URL": url, "COLUMNS": "200"}
    return subprocess.run(
        list(argv), cwd=HERE, env=env, text=True, capture_output=True, timeout=60, check=False
    )


def _job(url: str, job_id: str) -> dict[str, Any]:
    out = _run(url, KUBEQ, "job", job_id, "-o", "json")
    assert out.returncode == 0, out.stderr
    found: dict[str, Any] = json.loads(out.stdout)
    return found


def test_human_approval_waits_then_publishes(redis_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "KUBEQ_REDIS_URL": redis_url}
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            [KUBEQ, "worker", "tasks"], cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            asked = _run(redis_url, sys.executable, "request.py", "7")
            assert asked.returncode == 0, asked.stderr
            job_id = asked.stdout.strip()
            deadline = time.monotonic() + 60
            while _job(redis_url, job_id)["status"] != "sleeping":
                assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
                time.sleep(0.1)
            shown = _job(redis_url, job_id)
            assert shown["waiting_for"] == "approval:7"
            assert set(shown["steps"]) == {"build", "ask"}
            sent = _run(redis_url, KUBEQ, "signal", "approval:7", "--data", '{"approved": true}')
            assert "woke 1 job" in sent.stdout, sent.stderr
            while _job(redis_url, job_id)["status"] != "finished":
                assert time.monotonic() < deadline + 60, (tmp_path / "worker.log").read_text()
                time.sleep(0.1)
            result = json.loads(str(_job(redis_url, job_id)["result"]))
            assert result["published"] is True and "approved by a manager" in result["url"]
        finally:
            worker.terminate()
            worker.wait(30)
