"""The job context with real worker processes: a running task reports progress and
meta through ``kubeq.current_job()`` in thread, process and async pools; the caller reads them
with ``job.progress()``, ``job.meta()``, ``job.info()`` and ``kubeq job ID``; meta survives a
retry; a zombie's write after its lease was taken over is refused; oversized values are
refused in the task with an error naming the limit.
"""

from __future__ import annotations

import json
import signal

import pytest
import qtasks
import redis

import kubeq
from kubeq import defaults
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker, run


def _started(r: redis.Redis, tag: str) -> list[str]:
    return [v.decode() for v in r.lrange(f"test:started:{tag}", 0, -1)]


@pytest.mark.parametrize(
    ("task", "first", "last", "meta"),
    [
        (
            qtasks.reports_thread,
            {"done": 1, "total": 2},
            {"done": 2, "total": 2},
            {"stage": "download", "size": 3},
        ),
        (
            qtasks.reports_child,
            {"done": 1, "total": 2},
            {"done": 2, "total": 2},
            {"stage": "download", "size": 3},
        ),
        (qtasks.reports_async, 50, 100, {"stage": "async"}),
    ],
    ids=["thread", "process", "async"],
)
def test_progress_and_meta_while_running_and_after(
    app: kubeq.App,
    r: redis.Redis,
    start_worker: StartWorker,
    redis_url: str,
    task: kubeq.Task[..., object],
    first: object,
    last: object,
    meta: dict[str, object],
) -> None:
    start_worker()
    tag = task.name
    job = app.queue().enqueue(task, tag)
    assert job.progress() is None and job.meta() == {}
    wait_until(lambda: _started(r, tag), what="the task to report")
    # while it runs, the caller sees what it reported
    assert job.status() == "active"
    assert job.progress() == first
    assert job.meta() == meta
    info = job.info()
    assert (info.progress, info.meta) == (first, meta)
    shown = run(redis_url, "job", job.id)
    assert shown.returncode == 0, shown.stderr
    assert f"progress: {json.dumps(first)}" in shown.stdout
    for key, value in meta.items():
        assert f"meta.{key}: {json.dumps(value)}" in shown.stdout
    r.set(f"test:go:{tag}", 1)
    # the task saw its own meta; the last progress stays readable after the end
    assert job.result(timeout=30) == meta
    assert job.progress() == last and job.meta() == meta
    as_json = run(redis_url, "job", job.id, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert (doc["progress"], doc["meta"]) == (last, meta)


def test_meta_survives_a_retry(app: kubeq.App, start_worker: StartWorker) -> None:
    start_worker()
    job = app.queue().enqueue(qtasks.meta_across_retries, "retry")
    # the second attempt saw what the first stored, and added its own
    assert job.result(timeout=30) == {"attempt1": True}
    assert job.meta() == {"attempt1": True, "attempt2": True}
    assert job.info().attempts == 2


def test_a_zombies_progress_is_refused_after_its_lease_was_taken_over(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    zombie = start_worker("--lease", "1")
    job = app.queue().enqueue(qtasks.zombie_progress, "zp", 1.5)
    wait_until(lambda: _started(r, "zp"), what="the job to start")
    assert job.progress() == f"started by {zombie.pid}"
    zombie.signal(signal.SIGSTOP)  # frozen: no heartbeat, the lease expires
    rescuer = start_worker("--lease", "1")
    assert job.result(timeout=60) == rescuer.pid
    assert job.progress() == f"ended by {rescuer.pid}"
    zombie.signal(signal.SIGCONT)  # the zombie wakes and reports its end: refused
    wait_until(lambda: r.llen("test:refused:zp") == 1, what="the zombie's write to be refused")
    refused = r.lindex("test:refused:zp", 0)
    assert refused is not None and refused.decode().startswith(f"{zombie.pid} job {job.id}")
    assert "no longer holds the job" in refused.decode()
    assert job.progress() == f"ended by {rescuer.pid}"
    assert job.status() == "finished" and job.result(timeout=1) == rescuer.pid


def test_oversized_progress_is_refused_naming_the_limit(
    app: kubeq.App, start_worker: StartWorker
) -> None:
    start_worker()
    job = app.queue().enqueue(qtasks.oversized_progress, defaults.MAX_PROGRESS_BYTES)
    message = job.result(timeout=30)
    assert "over the limit of" in message and "MAX_PROGRESS_BYTES" in message
    assert job.progress() is None
    fits = app.queue().enqueue(qtasks.oversized_progress, 100)
    assert fits.result(timeout=30) == "stored"
    assert fits.progress() == "x" * 100
