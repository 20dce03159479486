"""What a caller gets when the gateway cannot or will not do the work: a flood of refused
tokens is bounded (429 with Retry-After, and no TokenReview for each) per source address and
in all, while tokens already reviewed still pass; an API server or a Redis that does not
answer is a 503 with a reason and a Retry-After, and nothing is enqueued."""

from __future__ import annotations

import redis

from tests.gateway.conftest import World
from tests.gateway.gwsupport import token, token_reviews
from tests.support.redisserver import free_port

ADD = {"task": "qtasks.add", "args": [1, 2]}


def _count(world: World) -> int:
    r = redis.Redis.from_url(world.redis_url)
    base = f"kubeq:{{{world.queue('tq-a')}}}:"
    return int(r.zcard(base + "ready")) + int(r.zcard(base + "delayed"))


def test_a_flood_of_bad_tokens_is_bounded_per_source_and_in_all(world: World) -> None:
    gw, path = world.unauth, world.jobs("tq-a")
    bob = world.token("bob")
    assert gw.request("POST", path, ADD, bob).status == 403  # reviewed: now cached
    reviews = token_reviews(world.kubectl)

    # one stale token sent again and again: reviewed once, then refused from the cache,
    # which costs nothing and so uses up no bound
    again = [gw.request("POST", path, ADD, "stale", source="127.0.0.4") for _ in range(8)]
    assert [r.status for r in again] == [401] * 8

    first = [gw.request("POST", path, ADD, f"not-a-token-{i}") for i in range(10)]
    assert [r.status for r in first] == [401] * 3 + [429] * 7  # 3 per source address
    assert int(first[-1].headers["retry-after"]) >= 1
    assert "from 127.0.0.1" in first[-1].body["error"]

    second = [gw.request("POST", path, ADD, f"other-{i}", source="127.0.0.2") for i in range(5)]
    assert [r.status for r in second] == [401] + [429] * 4  # 5 in all: 1 + 3 + 1
    third = gw.request("POST", path, ADD, "yet-another", source="127.0.0.3")
    assert third.status == 429, third.body
    assert "in all" in third.body["error"]
    assert int(third.headers["retry-after"]) >= 1

    assert token_reviews(world.kubectl) - reviews == 5  # one per token refused by a review
    assert gw.request("POST", path, ADD, bob).status == 403  # a reviewed token still passes
    assert gw.request("POST", path, ADD, "not-a-token-0").status == 401  # its refusal too


def test_an_api_server_that_does_not_answer_is_a_503_with_retry_after(world: World) -> None:
    fresh = token(world.kubectl, world.namespace, "alice")  # not reviewed yet
    before = _count(world)
    world.apiserver.set_enabled(False)  # the gateway's API server stops answering
    try:
        reply = world.gateway.request("POST", world.jobs("tq-a"), ADD, fresh)
    finally:
        world.apiserver.set_enabled(True)
    assert reply.status == 503, reply.body
    assert "Kubernetes API server is unavailable" in reply.body["error"]
    assert "TokenReview" in reply.body["error"]
    assert int(reply.headers["retry-after"]) >= 1
    assert _count(world) == before
    again = world.gateway.request("POST", world.jobs("tq-a"), ADD, fresh)
    assert again.status == 201, again.body  # the 503 was not remembered as a refusal


def test_a_redis_that_does_not_answer_is_a_503_with_retry_after(world: World) -> None:
    world.apply(world.taskqueue("tq-down", f"redis://127.0.0.1:{free_port()}/0"))
    reply = world.gateway.request("POST", world.jobs("tq-down"), ADD, world.token("alice"))
    assert reply.status == 503, reply.body
    assert f"Redis of TaskQueue {world.namespace}/tq-down is unavailable" in reply.body["error"]
    assert int(reply.headers["retry-after"]) >= 1
