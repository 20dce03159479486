"""The gateway's signal route on the local control plane: a job run by a real worker waits
for a signal (``durtasks.approver``); a POST to ``.../signals`` naming the job, or the key it
waits on, wakes it with the payload and says how many jobs woke. Bad input is a 400 naming
the field, a caller without RBAC a 403, and neither wakes anything."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kubeq
from tests.gateway.conftest import World
from tests.redis.durable_workers import DurableWorker


def _signals(world: World, taskqueue: str) -> str:
    return f"/v1/namespaces/{world.namespace}/taskqueues/{taskqueue}/signals"


def _asleep(job: kubeq.Job) -> None:
    deadline = time.monotonic() + 60
    while job.status() != "sleeping":
        assert time.monotonic() < deadline, f"the job did not start waiting: {job.status()}"
        time.sleep(0.1)


@pytest.fixture
def worker(world: World, tmp_path: Path) -> Iterator[DurableWorker]:
    w = DurableWorker(world.redis_url, tmp_path / "worker.log", ["-q", world.queue("tq-a")])
    yield w
    w.stop()


def test_a_signal_over_http_wakes_the_job_that_waits(world: World, worker: DurableWorker) -> None:
    alice = world.token("alice")
    app = kubeq.App(world.redis_url)
    q = app.queue(world.queue("tq-a"))
    by_job = q.enqueue("durtasks.approver", "gw-1", "gw:one")
    by_key = q.enqueue("durtasks.approver", "gw-2", "gw:two")
    _asleep(by_job)
    _asleep(by_key)
    path = _signals(world, "tq-a")
    status, body = world.gateway.call("GET", world.jobs("tq-a") + f"/{by_job.id}", token=alice)
    assert (status, body["status"], body["waiting_for"]) == (200, "sleeping", "gw:one"), body
    assert body["sleep_until"] is None  # no timeout: only a signal wakes it

    status, body = world.gateway.call("POST", path, {"job": by_job.id, "payload": [1]}, alice)
    assert (status, body) == (200, {"key": "gw:one", "queue": q.name, "woke": 1}), body
    assert by_job.result(timeout=60) == [1]
    status, body = world.gateway.call("POST", path, {"key": "gw:two", "payload": {"ok": 1}}, alice)
    assert (status, body["woke"]) == (200, 1), body
    assert by_key.result(timeout=60) == {"ok": 1}
    # the job has ended: it waits for nothing; an unknown one is not found
    status, body = world.gateway.call("POST", path, {"job": by_job.id}, alice)
    assert (status, body["field"]) == (409, "job"), body
    status, body = world.gateway.call("POST", path, {"job": "no-such-job"}, alice)
    assert status == 404, body
    app.close()


def test_bad_signals_are_refused_naming_the_field_and_wake_nothing(
    world: World, worker: DurableWorker
) -> None:
    alice, bob = world.token("alice"), world.token("bob")
    app = kubeq.App(world.redis_url)
    job = app.queue(world.queue("tq-a")).enqueue("durtasks.approver", "gw-3", "gw:three")
    _asleep(job)
    path = _signals(world, "tq-a")
    call = world.gateway.call
    bad = [
        ({}, "key"),
        ({"payload": 1}, "key"),
        ({"key": ""}, "key"),
        ({"key": "gw:three", "job": job.id}, "job"),
        ({"key": "gw:three", "mode": "some"}, "mode"),
        ({"key": "gw:three", "ttl": -1}, "ttl"),
        ({"key": "gw:three", "colour": "red"}, "colour"),
        ({"key": "gw:three", "queue": "elsewhere"}, "queue"),
        ({"job": "not an id!"}, "job"),
        ({"job": job.id, "mode": "one"}, "mode"),
    ]
    for doc, field in bad:
        status, body = call("POST", path, doc, alice)
        assert (status, body.get("field")) == (400, field), (doc, body)
    status, body = call("POST", path, raw=b"{not json", token=alice)
    assert (status, body["field"]) == (400, "body"), body
    status, body = call("POST", path, {"key": "gw:three"}, bob)
    assert status == 403 and "may not update" in body["error"], body
    assert call("POST", path, {"key": "gw:three"})[0] == 401
    status, body = call("POST", _signals(world, "ghost"), {"key": "gw:three"}, alice)
    assert status == 404, body
    assert job.status() == "sleeping"  # nothing reached it
    status, body = call("POST", path, {"key": "gw:three", "payload": "yes"}, alice)
    assert (status, body["woke"]) == (200, 1), body
    assert job.result(timeout=60) == "yes"
    app.close()
