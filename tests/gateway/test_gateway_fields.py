"""Bad input to the gateway is a 400 naming the field at fault, for every field of a POST body,
every query parameter and a job's id in the path, and nothing is enqueued."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from tests.gateway.conftest import World

ADD = {"task": "qtasks.add", "args": [1, 2]}

BODIES: list[tuple[Any, str]] = [
    ({"args": [1]}, "task"),
    ({**ADD, "task": 5}, "task"),
    ({**ADD, "task": ""}, "task"),
    ({**ADD, "task": "qtasks.always_fail"}, "task"),  # not in tq-a's spec.tasks
    ({**ADD, "args": "1, 2"}, "args"),
    ({**ADD, "kwargs": [1]}, "kwargs"),
    ({**ADD, "id": "my task"}, "id"),
    ({**ADD, "id": 7}, "id"),
    ({**ADD, "id": "x" * 201}, "id"),
    ({**ADD, "queue": "not-a-queue-of-tq-a"}, "queue"),
    ({**ADD, "queue": "bad queue!"}, "queue"),
    ({**ADD, "priority": 42}, "priority"),
    ({**ADD, "priority": "high"}, "priority"),
    ({**ADD, "priority": True}, "priority"),
    ({**ADD, "delay": -1}, "delay"),
    ({**ADD, "delay": "soon"}, "delay"),
    ({**ADD, "timeout": 0}, "timeout"),
    ({**ADD, "timeout": "1 minute"}, "timeout"),
    ({**ADD, "max_attempts": 0}, "max_attempts"),
    ({**ADD, "max_attempts": 1.5}, "max_attempts"),
    ({**ADD, "result_ttl": 0}, "result_ttl"),
    ({**ADD, "result_ttl": 10**10}, "result_ttl"),
    ({**ADD, "tags": "vip"}, "tags"),
    ({**ADD, "tags": ["a b"]}, "tags"),
    ({**ADD, "colour": "red"}, "colour"),
    ({"jobs": []}, "jobs"),
    ({"jobs": "all"}, "jobs"),
    ({"jobs": [ADD], "priority": 1}, "priority"),
    ({"jobs": [ADD, 5]}, "jobs[1]"),
    ({"jobs": [ADD, {**ADD, "id": "the task"}]}, "jobs[1].id"),
    ({"jobs": [ADD, {**ADD, "timeout": -3}]}, "jobs[1].timeout"),
    ([ADD], "body"),
]


def _count(world: World) -> int:
    r = redis.Redis.from_url(world.redis_url)
    base = f"kubeq:{{{world.queue('tq-a')}}}:"
    return int(r.zcard(base + "ready")) + int(r.zcard(base + "delayed"))


@pytest.mark.parametrize(("body", "field"), BODIES, ids=[f for _, f in BODIES])
def test_each_field_of_a_post_body_is_named_when_bad(world: World, body: Any, field: str) -> None:
    before = _count(world)
    status, reply = world.gateway.call("POST", world.jobs("tq-a"), body, world.token("alice"))
    assert (status, reply.get("field")) == (400, field), reply
    assert reply["error"]
    assert _count(world) == before


QUERIES = [
    ("POST", "", "?wait=3", "wait"),
    ("GET", "/j-1", "?queue=bad%20queue!", "queue"),
    ("GET", "/j-1", "?queue=not-a-queue-of-tq-a", "queue"),
    ("GET", "/j-1", "?colour=red", "colour"),
    ("GET", "/j-1/result", "?wait=soon", "wait"),
    ("GET", "/j-1/result", "?wait=61", "wait"),
    ("GET", "/j-1/result", "?wait=nan", "wait"),
    ("GET", "/j-1/result", "?abort=true", "abort"),
    ("DELETE", "/j-1", "?abort=maybe", "abort"),
    ("DELETE", "/j-1", "?wait=1", "wait"),
    ("GET", "/bad%20id", "", "id"),
    ("GET", "/bad%20id/result", "?wait=1", "id"),
    ("DELETE", "/bad%20id", "", "id"),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "field"), QUERIES, ids=[f"{m}{p}{q}" for m, p, q, _ in QUERIES]
)
def test_each_query_parameter_is_named_when_bad(
    world: World, method: str, path: str, query: str, field: str
) -> None:
    body = {**ADD, "id": "j-1"} if method == "POST" else None
    before = _count(world)
    url = world.jobs("tq-a") + path + query
    status, reply = world.gateway.call(method, url, body, world.token("alice"))
    assert (status, reply.get("field")) == (400, field), reply
    assert _count(world) == before
