"""A worker of a retired version (a versioned rollout), against a real Redis and a real worker
process: once its version is listed in ``<queue>:retired`` it finishes the job it runs but
fetches no new one, though it has a free slot; when the version is current again, it fetches."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid

import pytest
import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker
from tests.support.redisserver import free_port


def test_a_retired_version_finishes_its_job_and_takes_no_new_one(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    q, tag = f"rv-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    monkeypatch.setenv("KUBEQ_VERSION", "v1")
    w = start_worker("--queue", q, "--concurrency", "2")
    long = app.enqueue_many([qtasks.run_and_record.s(tag, 4.0).set(queue=q)])[0]
    wait_until(lambda: r.llen(f"test:started:{tag}") == 1, what="the long job started")

    r.hset(QueueKeys.of(q).retired, "v1", int(time.time() * 1000))
    wait_until(lambda: "v1 retired" in w.log(), what="the worker read its retirement")
    new = app.enqueue_many([qtasks.add.s(1, 2).set(queue=q)])[0]
    assert long.result(timeout=30) == w.pid  # the job it held ends here, once
    assert r.llen(f"test:started:{tag}") == 1
    time.sleep(3)  # several heartbeats and fetch rounds: the free slots stay empty
    assert new.status() == "queued", w.log()[-2000:]

    r.hdel(QueueKeys.of(q).retired, "v1")  # the version is current again (a rollback)
    assert new.result(timeout=30) == 3


def test_a_retired_idle_worker_stays_healthy(
    r: redis.Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It fetches nothing, yet it still reaches Redis (its heartbeat reads the retirement): its
    /healthz must not fail for want of a round trip, or the kubelet would restart it."""
    q = f"rv-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("KUBEQ_VERSION", "v1")
    r.hset(QueueKeys.of(q).retired, "v1", int(time.time() * 1000))
    port = free_port()
    w = start_worker("--queue", q, "--metrics-port", str(port), "--stall-seconds", "2")
    wait_until(lambda: "v1 retired" in w.log(), what="the worker read its retirement")
    deadline = time.monotonic() + 6  # three times the stall limit
    while time.monotonic() < deadline:
        status, body = healthz(port)
        assert status == 200, body
        time.sleep(0.5)


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
