"""A worker of a retired version (a versioned rollout), against a real Redis and a real worker
process: once its version is listed in ``<queue>:retired`` it finishes the job it runs but
fetches no new one, though it has a free slot; when the version is current again, it fetches."""

from __future__ import annotations

import time
import uuid

import pytest
import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker


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
