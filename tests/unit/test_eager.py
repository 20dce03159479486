"""Eager mode (kubeq.testing.eager): jobs run inline through the worker's own attempt code.

No Redis here: the App points at a port nobody listens on, so any network use would fail.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

import kubeq
from kubeq.testing import eager
from tests.support.redisserver import free_port

app = kubeq.App(f"redis://127.0.0.1:{free_port()}/0")
calls: list[str] = []


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def echo(value: object) -> object:
    return value


@app.task
async def async_add(x: int, y: int) -> int:
    await asyncio.sleep(0)
    return x + y


@app.task(max_attempts=3, backoff_min=2, backoff_max=10)
def flaky(tag: str, failures: int) -> str:
    calls.append(tag)
    if calls.count(tag) <= failures:
        raise ConnectionError(f"attempt {calls.count(tag)} of {tag} failed")
    return f"{tag} ok"


@app.task(retry_on=(ConnectionError,))
def picky() -> None:
    raise KeyError("missing")


@app.task
def asks_again() -> None:
    raise kubeq.Retry(delay=7, reason="not yet")


@app.task
def returns_a_set() -> object:
    return {1, 2}


def test_delay_runs_the_task_inline_and_result_answers() -> None:
    with eager(app) as runner:
        job = add.delay(2, 3)
        assert job.result() == 5 and job.status() == "finished"
        assert job.info().attempts == 1 and job.info().task == add.name
        assert app.queue().enqueue(add, 1, 1).result() == 2
        assert runner.jobs[0] is job
    assert app.eager is None  # the block restores normal enqueue


def test_arguments_make_the_json_round_trip() -> None:
    with eager(app):
        assert echo.delay((1, 2)).result() == [1, 2]  # a tuple arrives as a list, as in prod
        assert echo.delay({"k": [None, True, 1.5]}).result() == {"k": [None, True, 1.5]}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, f"argument 0 of task '{__name__}.echo' (set) is not JSON-serializable"),
        (datetime(2026, 1, 1, tzinfo=UTC), "(datetime) is not JSON-serializable"),
        (float("inf"), "inf is not a JSON number"),
    ],
)
def test_a_non_json_argument_is_refused_as_the_real_client_refuses_it(
    value: object, message: str
) -> None:
    with eager(app), pytest.raises(kubeq.SerializationError) as eagerly:
        echo.delay(value)
    with pytest.raises(kubeq.SerializationError) as really:  # the real client, before Redis
        echo.delay(value)
    assert str(eagerly.value) == str(really.value)
    assert message in str(eagerly.value)


def test_bad_options_are_refused_as_the_real_client_refuses_them() -> None:
    with eager(app), pytest.raises(ValueError, match="priority must be an integer from 0"):
        add.apply_async((1, 2), priority=10)


def test_retries_follow_the_task_policy() -> None:
    with eager(app):
        job = flaky.delay("twice", 2)
        assert job.result() == "twice ok"
        assert job.info().attempts == 3
        assert len(job.retry_delays) == 2 and all(1 <= d <= 10 for d in job.retry_delays)
        dead = flaky.delay("always", 5)
        with pytest.raises(kubeq.JobFailed, match="failed 3 of 3 attempts: ConnectionError"):
            dead.result()
        assert dead.status() == "failed" and dead.info().attempts == 3
        assert "ConnectionError: attempt 3 of always failed" in dead.info().error
        once = flaky.apply_async(("once", 5), max_attempts=1)  # a per-call override applies
        with pytest.raises(kubeq.JobFailed, match="failed 1 of 1 attempts"):
            once.result()


def test_error_types_and_reasons_match_the_worker() -> None:
    with eager(app):
        with pytest.raises(kubeq.JobFailed, match="KeyError is not retried by this task"):
            picky.delay().result()
        retried = asks_again.delay()
        with pytest.raises(kubeq.JobFailed, match="retry requested on the last attempt"):
            retried.result()
        assert retried.retry_delays == [7.0, 7.0]
        with pytest.raises(kubeq.JobFailed, match="returned a set, which is not JSON"):
            returns_a_set.delay().result()
        with pytest.raises(kubeq.JobFailed, match=r"unknown task 'nobody\.registered'"):
            app.queue().enqueue("nobody.registered").result()


def test_async_api_and_async_tasks_run_eagerly() -> None:
    async def main() -> list[object]:
        job = await async_add.adelay(20, 22)
        inner_sync = add.delay(1, 1)  # a sync .delay() from inside a coroutine
        many = await app.aenqueue_many([add.s(i, i) for i in range(3)])
        return [
            await job.aresult(timeout=1),
            await job.astatus(),
            inner_sync.result(),
            [await j.aresult() for j in many],
            await job.acancel(),
        ]

    with eager(app):
        assert asyncio.run(main()) == [42, "finished", 2, [0, 2, 4], False]
        assert async_add.delay(1, 2).result() == 3  # an async task from sync code
