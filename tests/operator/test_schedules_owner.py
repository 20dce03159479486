"""Schedules and the TaskQueue that owns them, against a real Redis: a schedule's error is
posted by its owner's loop whichever loop met it, a runtime schedule's error is logged and
posted nowhere."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
import redis.asyncio

import kubeq
from kubeq.options import Call
from kubeq.schedules import Schedule
from kubeq.store.keys import schedule_key, schedule_keys
from kubeq_operator import schedules

pytestmark = pytest.mark.redis

HOUR = 3600
TICK = Schedule("tick", "e2e.work", queue="sched", every=HOUR)


@pytest.fixture
def app(redis_url: str) -> Iterator[kubeq.App]:
    a = kubeq.App(redis_url)
    yield a
    a.close()


def break_and_make_due(app: kubeq.App, sid: str) -> None:
    spec = app.redis.hget(schedule_key(sid), "spec")
    assert spec is not None and b'"queue":"sched"' in spec
    app.redis.hset(schedule_key(sid), "spec", spec.replace(b'"queue":"sched"', b'"queue":"a{b}"'))
    now = int(app.redis.time()[0])
    app.redis.hset(schedule_key(sid), "next", now - 1)
    app.redis.zadd(schedule_keys()[0], {sid: now - 1})


async def tick(
    driver: schedules.Driver, url: str, specs: tuple[Schedule, ...]
) -> list[tuple[str, str]]:
    """One pass of ``driver``; the (reason, message) of each Event it posted."""
    client = redis.asyncio.Redis.from_url(url)
    app = kubeq.App(url)
    posted: list[tuple[str, str]] = []

    async def enqueue(calls: list[Call]) -> None:
        await app.aenqueue_many(calls)

    try:
        now = float((await client.time())[0])
        await driver.tick(
            client, "kubeq", specs, ("sched",), enqueue, lambda *e: posted.append(e), now
        )
        return posted
    finally:
        await client.aclose()
        app.close()


def test_an_error_goes_to_the_owner_whichever_loop_meets_it(
    app: kubeq.App, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    owner, other = schedules.Driver("ns", "owner"), schedules.Driver("ns", "other")
    try:
        assert asyncio.run(tick(owner, redis_url, (TICK,))) == []
        app.schedules.upsert("runtime", "e2e.work", every=HOUR, queue="sched")
        break_and_make_due(app, "tq:ns:owner:tick")
        break_and_make_due(app, "runtime")
        with caplog.at_level(logging.WARNING, logger="kubeq_operator"):
            assert asyncio.run(tick(other, redis_url, ())) == []  # it met both errors
        assert "schedule runtime: " in caplog.text
        posted = asyncio.run(tick(owner, redis_url, (TICK,)))
        assert [r for r, _ in posted] == ["ScheduleError"], posted
        assert "schedule tq:ns:owner:tick: " in posted[0][1] and "a{b}" in posted[0][1]
    finally:
        owner.close()
        other.close()


def test_an_error_of_a_taskqueue_served_elsewhere_is_logged(
    app: kubeq.App, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    owner, other = schedules.Driver("ns", "gone"), schedules.Driver("ns", "other")
    try:
        asyncio.run(tick(owner, redis_url, (TICK,)))
        owner.close()  # its loop ended (deleted, or another shard serves it now)
        break_and_make_due(app, "tq:ns:gone:tick")
        with caplog.at_level(logging.WARNING, logger="kubeq_operator"):
            assert asyncio.run(tick(other, redis_url, ())) == []
        assert "schedule tq:ns:gone:tick: " in caplog.text
        assert "TaskQueue ns/gone is not served here" in caplog.text
    finally:
        other.close()
