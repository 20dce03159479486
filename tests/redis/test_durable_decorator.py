"""The decorator form of durable steps and the job handle's async reads, with real worker
processes on a real Redis: each call of a decorated function inside a task is its own step
(``charge``, ``charge#2``...), recorded once and returned from its record when the job
continues after a sleep; a decorated function called inside another step is a plain call;
an async decorated step records the same way; ``await job.asteps()`` (and ``aprogress``,
``ameta``) read what their sync twins read (docs/durable.md)."""

from __future__ import annotations

import asyncio

import durtasks
import pytest
import redis

import kubeq
from tests.redis import durable_workers
from tests.redis.durable_workers import StartDurable

_fixture = pytest.fixture(name="start_durable")(durable_workers.start_durable)


def _eff(r: redis.Redis, tag: str, name: str) -> int:
    return int(r.get(f"test:eff:{tag}:{name}") or 0)


def test_each_call_of_a_decorated_step_is_recorded_once_across_a_sleep(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    start_durable()
    job = app.queue().enqueue(durtasks.decorated, "d", 1.0)
    first = {"amount": 10, "run": 1, "fee": 1}
    second = {"amount": 20, "run": 1, "fee": 2}
    third = {"amount": 30, "run": 1, "fee": 3}
    assert job.result(timeout=60) == [first, second, third]
    # the continuation after the sleep returned the first two from their records
    assert [_eff(r, "d", f"charge-{n}") for n in (10, 20, 30)] == [1, 1, 1]
    assert _eff(r, "d", "fee") == 3  # inside charge: a plain call, no step of its own
    assert job.steps() == {
        "charge": first,
        "charge#2": second,
        "charge#3": third,
        "~sleep:1": job.steps()["~sleep:1"],
    }
    assert asyncio.run(job.asteps()) == job.steps()


def test_an_async_decorated_step_and_the_async_reads_of_a_job(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    start_durable()
    job = app.queue().enqueue(durtasks.async_decorated, "a", 1.0)
    assert job.result(timeout=60) == ["before #1", "after #2"]
    assert _eff(r, "a", "notify") == 2  # one run each, though the task ran twice

    async def reads() -> tuple[object, ...]:
        return (await job.asteps(), await job.aprogress(), await job.ameta())

    steps, progress, meta = asyncio.run(reads())
    assert steps == job.steps()
    assert (steps["notify"], steps["notify#2"]) == ("before #1", "after #2")
    assert (progress, meta) == (job.progress(), job.meta()) == ({"at": "sleep"}, {"tag": "a"})
