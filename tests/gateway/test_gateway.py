"""The gateway on the local control plane: a real kube-apiserver reviews every token
(TokenReview) and decision (SubjectAccessReview), the jobs land in a real Redis, and a real
Python worker runs them."""

from __future__ import annotations

import os
import subprocess

import redis

from kubeq.gateway.jobs import FIELDS
from tests.gateway.conftest import World
from tests.gateway.gwsupport import KUBEQ, expired_token, token
from tests.redis.workers import HERE as QTASKS_DIR

ADD = {"task": "qtasks.add", "args": [20, 22]}


def _ready(world: World, taskqueue: str) -> int:
    r = redis.Redis.from_url(world.redis_url)
    return int(r.zcard(f"kubeq:{{{world.queue(taskqueue)}}}:ready"))


def test_rbac_decides_which_taskqueue_a_serviceaccount_may_enqueue_to(world: World) -> None:
    alice = world.token("alice")
    bob = world.token("bob")
    status, body = world.gateway.call("POST", world.jobs("tq-a"), {**ADD, "id": "rbac-1"}, alice)
    assert status == 201, body
    assert body == {"jobs": [{"id": "rbac-1", "queue": world.queue("tq-a")}]}
    status, body = world.gateway.call("POST", world.jobs("tq-b"), ADD, alice)
    assert status == 403, body
    assert "may not create" in body["error"]
    before = _ready(world, "tq-a")
    status, body = world.gateway.call("POST", world.jobs("tq-a"), ADD, bob)
    assert status == 403, body
    assert _ready(world, "tq-a") == before
    assert _ready(world, "tq-b") == 0


def test_a_token_for_another_audience_is_refused(world: World) -> None:
    other = token(world.kubectl, world.namespace, "alice", audience="somewhere-else")
    before = _ready(world, "tq-a")
    status, body = world.gateway.call("POST", world.jobs("tq-a"), ADD, other)
    assert status == 401, body
    assert "audience" in body["error"]
    assert world.gateway.call("POST", world.jobs("tq-a"), ADD)[0] == 401
    assert _ready(world, "tq-a") == before


def test_an_expired_token_is_refused(world: World) -> None:
    uid = world.kubectl(
        "get", "sa", "alice", "-n", world.namespace, "-o", "jsonpath={.metadata.uid}", check=True
    ).stdout
    stale = expired_token(world.pki, world.namespace, "alice", uid)
    before = _ready(world, "tq-a")
    status, body = world.gateway.call("POST", world.jobs("tq-a"), ADD, stale)
    assert status == 401, body
    assert "expired" in body["error"]
    assert _ready(world, "tq-a") == before


def test_bad_input_is_refused_with_its_field_and_nothing_is_enqueued(world: World) -> None:
    alice = world.token("alice")
    before = _ready(world, "tq-a")
    call = world.gateway.call
    status, body = call("POST", world.jobs("tq-a"), raw=b"{not json", token=alice)
    assert (status, body["field"]) == (400, "body")
    status, body = call("POST", world.jobs("tq-a"), {**ADD, "priority": 42}, alice)
    assert (status, body["field"]) == (400, "priority"), body
    status, body = call("POST", world.jobs("tq-a"), {"jobs": [ADD, {"args": [1]}]}, alice)
    assert (status, body["field"]) == (400, "jobs[1].task"), body
    status, body = call("POST", world.jobs("tq-a"), {**ADD, "colour": "red"}, alice)
    assert (status, body["field"]) == (400, "colour"), body
    status, body = call("POST", world.jobs("tq-a"), {**ADD, "task": "qtasks.always_fail"}, alice)
    assert (status, body["field"]) == (400, "task"), body
    assert "not declared" in body["error"]
    status, body = call("POST", world.jobs("tq-a"), {**ADD, "args": ["x" * 8000]}, alice)
    assert status == 413, body
    status, body = call("POST", world.jobs("ghost"), ADD, alice)
    assert status == 404, body
    assert "no TaskQueue" in body["error"]
    assert _ready(world, "tq-a") == before


def test_a_job_enqueued_over_http_runs_and_its_result_comes_back(world: World) -> None:
    alice = world.token("alice")
    status, body = world.gateway.call("POST", world.jobs("tq-a"), {**ADD, "id": "run-1"}, alice)
    assert status == 201, body
    worker = subprocess.Popen(
        [KUBEQ, "worker", "qtasks", "--queue", world.queue("tq-a")],
        env={**os.environ, "KUBEQ_REDIS_URL": world.redis_url, "PYTHONPATH": str(QTASKS_DIR)},
        cwd=QTASKS_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        path = world.jobs("tq-a") + "/run-1/result?wait=30"
        for _ in range(10):  # each wait blocks on Redis until the job ends or 30 s pass
            status, body = world.gateway.call("GET", path, token=alice)
            if body.get("status") == "finished":
                break
        assert (status, body["status"], body["result"]) == (200, "finished", 42), body
        status, body = world.gateway.call("GET", world.jobs("tq-a") + "/run-1", token=alice)
        assert (status, body["status"], body["task"]) == (200, "finished", "qtasks.add")
    finally:
        worker.kill()
        worker.wait()


def test_delete_cancels_and_openapi_is_served(world: World) -> None:
    alice = world.token("alice")
    world.gateway.call("POST", world.jobs("tq-a"), {**ADD, "id": "del-1", "delay": 3600}, alice)
    status, body = world.gateway.call("DELETE", world.jobs("tq-a") + "/del-1", token=alice)
    assert (status, body["stopped"]) == (200, True), body
    status, body = world.gateway.call("GET", world.jobs("tq-a") + "/del-1", token=alice)
    assert body["status"] == "cancelled"
    status, doc = world.gateway.call("GET", "/openapi.json")
    assert status == 200
    assert "/v1/namespaces/{ns}/taskqueues/{name}/jobs" in doc["paths"]
    assert set(doc["components"]["schemas"]["Job"]["properties"]) == set(FIELDS)
    for path in doc["paths"].values():
        for operation in path.values():
            assert "Retry-After" in operation["responses"]["503"]["headers"]
            assert "Retry-After" in operation["responses"]["429"]["headers"]


def test_requests_above_a_callers_rate_are_refused(world: World) -> None:
    alice = world.token("alice")
    path = world.jobs("tq-a") + "/never-enqueued"
    replies = [world.strict.request("GET", path, token=alice) for _ in range(3)]
    assert [r.status for r in replies] == [404, 404, 429]
    assert int(replies[2].headers["retry-after"]) >= 1
