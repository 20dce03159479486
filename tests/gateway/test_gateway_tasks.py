"""A TaskQueue declares the tasks callers may enqueue in ``spec.tasks``: the API server keeps
the field (the CRD's schema has it) and refuses a malformed one, and the gateway refuses any
other task name with a 400 naming the field, enqueueing nothing."""

from __future__ import annotations

import json

import redis

from tests.gateway.conftest import TQ_A_TASKS, World


def test_the_crd_keeps_spec_tasks_and_refuses_a_malformed_one(world: World) -> None:
    stored = world.kubectl(
        "get", "taskqueue", "tq-a", "-n", world.namespace, "-o", "json", check=True
    ).stdout
    assert json.loads(stored)["spec"]["tasks"] == TQ_A_TASKS
    bad = world.taskqueue("tq-bad", world.redis_url, tasks="qtasks.add")
    done = world.kubectl("apply", "-f", "-", input=json.dumps(bad))
    assert done.returncode != 0
    assert "spec.tasks" in done.stderr, done.stderr


def test_only_declared_tasks_are_enqueued(world: World) -> None:
    alice = world.token("alice")
    r = redis.Redis.from_url(world.redis_url)
    key = f"kubeq:{{{world.queue('tq-a')}}}:job:"
    status, body = world.gateway.call(
        "POST", world.jobs("tq-a"), {"task": "qtasks.mark", "id": "declared-1"}, alice
    )
    assert status == 201, body
    assert r.hget(key + "declared-1", "status") == b"queued"
    jobs = {"jobs": [{"task": "qtasks.add", "id": "ok-1"}, {"task": "os.system", "id": "no-1"}]}
    status, body = world.gateway.call("POST", world.jobs("tq-a"), jobs, alice)
    assert (status, body["field"]) == (400, "jobs[1].task"), body
    assert "spec.tasks" in body["error"]
    assert not r.exists(key + "ok-1") and not r.exists(key + "no-1")
    status, body = world.gateway.call("POST", world.jobs("tq-b"), {"task": "any.thing"}, alice)
    assert status == 403  # tq-b declares nothing, but alice has no Role on it
