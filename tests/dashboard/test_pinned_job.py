"""A job pinned to a worker version shows its pin: on the dashboard's Job page and in
``kubeq job ID`` (docs/scaling.md, Pinning)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from starlette.testclient import TestClient

import kubeq
from kubeq.dashboard import Config, create_app

KUBEQ = str(Path(sys.executable).with_name("kubeq"))


def test_a_pinned_job_shows_its_version(redis_url: str) -> None:
    app = kubeq.App(redis_url)

    @app.task(name="pinned.page.render", pin_version=True)
    def render() -> None: ...

    job = app.enqueue_many([render.s().set(version="3f2a9c1e")])[0]
    plain = app.enqueue_many([render.s().set(pin_version=False)])[0]
    assert job.queue == "default~3f2a9c1e" and plain.queue == "default"
    dashboard = create_app(Config(redis_url=redis_url, cluster=False, read_only=True))
    with TestClient(dashboard, base_url="http://dash.test") as c:
        page = c.get(f"/jobs/{job.queue}/{job.id}").text
        other = c.get(f"/jobs/default/{plain.id}").text
    assert 'id="pinned">to worker version 3f2a9c1e<' in page
    assert 'id="pinned"' not in other
    env = {**os.environ, "KUBEQ_REDIS_URL": redis_url, "COLUMNS": "200"}
    out = subprocess.run(
        [KUBEQ, "job", job.id, "--queue", job.queue],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "pinned: to worker version 3f2a9c1e" in out.stdout
    app.close()
