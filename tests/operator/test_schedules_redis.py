"""The operator's schedules against a real Redis: two operator replicas ticking at once enqueue
each due time once (spec and runtime schedules alike), a schedule dropped from the spec is
deleted, and the pre-warm floor raises a decision ahead of a known run and names it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio

import kubeq
from kubeq.options import Call
from kubeq.schedules import Schedule
from kubeq.store.keys import schedule_key, schedule_keys
from kubeq_operator import schedules
from kubeq_operator.policy import Decision, ScalingSpec

pytestmark = pytest.mark.redis

HOUR = 3600
TICK = Schedule("tick", "e2e.work", queue="sched", args=(7,), every=HOUR)
NIGHTLY = Schedule(
    "nightly", "e2e.report", queue="sched", cron="0 3 * * *", timezone="Europe/Berlin"
)


@pytest.fixture
def app(redis_url: str) -> Iterator[kubeq.App]:
    a = kubeq.App(redis_url)
    yield a
    a.close()


def make_due(r: redis.Redis, sid: str, due: int) -> None:
    r.hset(schedule_key(sid), "next", due)
    r.zadd(schedule_keys()[0], {sid: due})


async def tick(
    driver: schedules.Driver, url: str, specs: tuple[Schedule, ...], events: list[str]
) -> schedules.Fired:
    client = redis.asyncio.Redis.from_url(url)
    app = kubeq.App(url)

    async def enqueue(calls: list[Call]) -> None:
        await app.aenqueue_many(calls)

    try:
        now = float((await client.time())[0])
        return await driver.tick(
            client, "kubeq", specs, ("sched",), enqueue, lambda r, m: events.append(r), now
        )
    finally:
        await client.aclose()


def test_two_replicas_enqueue_each_due_time_once(app: kubeq.App, redis_url: str) -> None:
    events: list[str] = []
    replicas = [schedules.Driver("ns", "tq") for _ in range(2)]
    specs = (TICK, NIGHTLY)

    async def both() -> list[schedules.Fired]:
        return list(await asyncio.gather(*(tick(d, redis_url, specs, events) for d in replicas)))

    assert all(not f.runs for f in asyncio.run(both()))  # first sight: nothing is due yet
    ids = [s.schedule.id for s in app.schedules.list()]
    assert ids == ["tq:ns:tq:nightly", "tq:ns:tq:tick"]
    app.schedules.upsert("runtime-1", "e2e.work", every=HOUR, queue="sched")
    now = int(app.redis.time()[0])
    for sid in ("tq:ns:tq:tick", "runtime-1"):
        make_due(app.redis, sid, now - 1)  # as after an outage of both replicas
    runs = [r for f in asyncio.run(both()) for r in f.runs]
    assert sorted(r[0] for r in runs) == ["runtime-1", "tq:ns:tq:tick"], runs
    assert app.queue("sched").stats().backlog == 2
    assert events.count("ScheduleEnqueued") == 1  # only the TaskQueue's own run
    assert all(not f.runs for f in asyncio.run(both()))


def test_a_schedule_dropped_from_the_spec_is_deleted(app: kubeq.App, redis_url: str) -> None:
    events: list[str] = []
    asyncio.run(tick(schedules.Driver("ns", "tq"), redis_url, (TICK, NIGHTLY), events))
    asyncio.run(tick(schedules.Driver("ns", "other"), redis_url, (TICK,), events))
    app.schedules.upsert("tq:ns:tqx", "e2e.work", every=HOUR)  # shares the text prefix only
    asyncio.run(tick(schedules.Driver("ns", "tq"), redis_url, (NIGHTLY,), events))
    ids = [s.schedule.id for s in app.schedules.list()]
    assert ids == ["tq:ns:other:tick", "tq:ns:tq:nightly", "tq:ns:tqx"]
    assert "SchedulesRemoved" in events


def test_pause_from_the_cli_survives_a_spec_sync(app: kubeq.App, redis_url: str) -> None:
    asyncio.run(tick(schedules.Driver("ns", "tq"), redis_url, (TICK,), []))
    assert app.schedules.pause("tq:ns:tq:tick")
    asyncio.run(tick(schedules.Driver("ns", "tq"), redis_url, (TICK,), []))
    st = app.schedules.get("tq:ns:tq:tick")
    assert st is not None and st.paused


def test_prewarm_floor_raises_the_decision_and_names_it(app: kubeq.App, redis_url: str) -> None:
    now = int(app.redis.time()[0])
    soon = Schedule(
        "burst",
        "e2e.work",
        queue="sched",
        every=HOUR,
        start=now + 300,
        prewarm_seconds=600,
        prewarm_replicas=4,
    )
    other = Schedule(
        "elsewhere",
        "e2e.work",
        queue="other",
        every=HOUR,
        start=now + 300,
        prewarm_seconds=600,
        prewarm_replicas=9,
    )
    driver = schedules.Driver("ns", "tq")
    asyncio.run(tick(driver, redis_url, (soon, other), []))
    n, why = driver.floor
    assert n == 4 and "tq:ns:tq:burst" in why
    steady = Decision(replicas=0, direction="none", reason="Steady", message="backlog=0", wanted=0)
    d = schedules.prewarm(steady, driver.floor, ScalingSpec(min_replicas=0, max_replicas=3), 0)
    assert (d.replicas, d.reason, d.direction) == (3, "PreWarm", "up")
    assert "prewarm=3 (schedule tq:ns:tq:burst fires at" in d.message
    later = Schedule(
        "burst",
        "e2e.work",
        queue="sched",
        every=HOUR,
        start=now + 3000,
        prewarm_seconds=600,
        prewarm_replicas=4,
    )
    asyncio.run(tick(driver, redis_url, (later,), []))
    assert driver.floor == (0, "")
