"""The kubeq image as users run it: its CLI, and a worker in a locked-down container (read-only
root filesystem without even a writable /tmp, uid 10001, every capability dropped) draining
jobs from a Redis on the host and exiting 0 on SIGTERM, finishing the job it holds."""

from __future__ import annotations

import importlib.metadata
import time

import kubeq
from tests.node.podmansupport import HERE, Containers, podman

# What Kubernetes gives a pod with readOnlyRootFilesystem, runAsUser 10001 and drop: [ALL].
LOCKED_DOWN = (
    "--read-only",
    "--read-only-tmpfs=false",
    "--user",
    "10001",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--network",
    "host",
    "--volume",
    f"{HERE / 'imgtasks.py'}:/app/imgtasks.py:ro",
)


def worker(containers: Containers, image: str, redis_url: str, *args: str) -> str:
    flags = (*LOCKED_DOWN, "--env", f"KUBEQ_REDIS_URL={redis_url}")
    return containers.run(image, "worker", "imgtasks", *args, flags=flags)


def wait_exit(name: str, timeout: float = 60) -> int:
    return int(podman("wait", name, timeout=timeout).stdout.strip())


def test_version_is_the_packaged_one(kubeq_image: str) -> None:
    out = podman("run", "--rm", "--network", "none", kubeq_image, "--version")
    assert importlib.metadata.version("kubeq") in out.stdout


def test_image_runs_as_uid_10001_with_the_package_data(kubeq_image: str) -> None:
    code = (
        "import os, importlib.resources as r; "
        "lua = r.files('kubeq.store.lua'); "
        "print(os.getuid(), os.getgid(), sorted(p.name for p in lua.iterdir()))"
    )
    out = podman(
        "run", "--rm", "--network", "none", "--entrypoint", "python", kubeq_image, "-c", code
    )
    uid, gid, scripts = out.stdout.split(" ", 2)
    assert (uid, gid) == ("10001", "10001")
    assert ".lua" in scripts, out.stdout


def test_locked_down_worker_drains_jobs_and_exits_0_on_sigterm(
    kubeq_image: str, redis_url: str, containers: Containers
) -> None:
    app = kubeq.App(redis_url)
    n = 500
    jobs = app.enqueue_many(kubeq.Call("img.square", (i,)) for i in range(n))
    who = app.queue().enqueue("img.whoami")
    name = worker(containers, kubeq_image, redis_url, "--concurrency", "8")
    try:
        assert [j.result(timeout=120) for j in jobs] == [i * i for i in range(n)]
        seen = who.result(timeout=30)
    except Exception:
        print(containers.logs(name))
        raise
    assert seen["uid"] == 10001 and seen["gid"] == 10001
    assert seen["caps"]["CapEff"] == 0 and seen["caps"]["CapPrm"] == 0
    assert seen["root_writable"] is False

    podman("kill", "--signal", "TERM", name)
    assert wait_exit(name) == 0, containers.logs(name)
    app.close()


def test_sigterm_lets_the_running_job_finish(
    kubeq_image: str, redis_url: str, containers: Containers
) -> None:
    app = kubeq.App(redis_url)
    job = app.queue().enqueue("img.slow", 7, 3.0)
    name = worker(containers, kubeq_image, redis_url)
    deadline = time.monotonic() + 60
    while not app.redis.lrange("img:started", 0, -1):
        assert time.monotonic() < deadline, containers.logs(name)
        time.sleep(0.1)
    podman("kill", "--signal", "TERM", name)
    assert wait_exit(name) == 0, containers.logs(name)
    assert app.redis.lrange("img:ended", 0, -1) == [b"7"]
    assert job.result(timeout=5) == 7
    app.close()
