"""Periodic jobs against a real Redis: each due time is enqueued exactly once, with two
operators ticking at the same time and across an operator restart (no memory kept)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
import redis.asyncio

import kubeq
from kubeq_operator import schedules
from kubeq_operator.spec import Schedule

pytestmark = pytest.mark.redis

EVERY_MINUTE = Schedule(name="tick", cron="* * * * *", task="e2e.work", queue="sched", args=(7,))


def test_two_operators_enqueue_each_due_time_once(redis_url: str) -> None:
    start = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC).timestamp()
    enqueued: list[tuple[str, int]] = []

    async def main() -> None:
        clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(2)]

        def enqueue_for(op: str) -> Callable[[schedules.Due], Awaitable[None]]:
            async def enqueue(due: schedules.Due) -> None:
                enqueued.append((op, due.at))
                await asyncio.sleep(0)

            return enqueue

        async def tick(i: int, now: float) -> None:
            await schedules.tick(
                clients[i],
                (EVERY_MINUTE,),
                prefix="kubeq",
                namespace="ns",
                taskqueue="tq",
                now=now,
                enqueue=enqueue_for(f"op{i}"),
            )

        # first sight: no past times are enqueued
        await asyncio.gather(tick(0, start), tick(1, start))
        assert enqueued == []
        # ten minutes of polls every 7 s by both operators at once
        now = start
        while now < start + 600:
            now += 7
            await asyncio.gather(tick(0, now), tick(1, now))
        # op1 "restarts" (no in-memory state anyway) after a 3-minute outage of both
        await tick(1, now + 180)
        for c in clients:
            await c.aclose()

    asyncio.run(main())
    times = [at for _, at in enqueued]
    assert len(times) == len(set(times)), "a due time was enqueued twice"
    minutes = sorted(times)
    assert minutes == list(range(int(start) + 30, minutes[-1] + 1, 60))
    assert {op for op, _ in enqueued} <= {"op0", "op1"}


def test_due_job_is_a_real_job(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    due = schedules.Due(EVERY_MINUTE, 1_767_225_600)
    call = kubeq.Call(
        EVERY_MINUTE.task, EVERY_MINUTE.args, queue=EVERY_MINUTE.queue, job_id=due.job_id
    )
    first = app.enqueue_many([call])[0]
    again = app.enqueue_many([call])[0]  # the library de-duplicates a live job id
    assert first.id == again.id == due.job_id
    assert app.queue("sched").stats().backlog == 1
    app.close()
