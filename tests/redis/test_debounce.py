"""Debounce with real workers: a burst runs once with its last arguments and every handle
resolves to that run; ``debounce_max`` runs a key under a constant stream; bad options are
refused naming the field."""

from __future__ import annotations

import time
from typing import Any

import pytest
import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.workers import StartWorker

reindex = qtasks.app.tasks["flowtasks.reindex"]


def one(app: kubeq.App, task: Any, *args: Any, **options: Any) -> kubeq.Job:
    """``task.apply_async(args, **options)`` through the test's App (the session's Redis)."""
    return app.enqueue_many([task.s(*args).set(**options)])[0]


bounded = qtasks.app.tasks["flowtasks.reindex_bounded"]


def test_a_burst_of_100_calls_runs_once_with_the_last_arguments(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    start_worker("--concurrency", "4")
    jobs = [app.enqueue_many([reindex.s("doc-a", v)])[0] for v in range(100)]
    assert len({j.id for j in jobs}) == 1, "every call of the burst names the one waiting job"
    assert [j.created for j in jobs[:2]] == [True, False]
    for j in jobs:
        assert j.result(timeout=60) == {"doc": "doc-a", "version": 99}
    assert r.lrange("flowtest:runs:doc-a", 0, -1) == [b"99"]
    info = jobs[0].info()
    assert info.status == "finished"
    flow = r.hmget(QueueKeys.of("default").job(jobs[0].id), "flow_joined", "flow")
    assert flow == [b"99", b"flowtasks.reindex:flowtasks.reindex"]
    # the key was released at the end: the next call makes a new job
    again = app.enqueue_many([reindex.s("doc-a", 100)])[0]
    assert again.created and again.id != jobs[0].id
    assert again.result(timeout=60)["version"] == 100


def test_keys_are_separate_and_default_to_the_task_name(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(redis_url)
    start_worker()
    a = [one(app, bounded, "doc-b", v) for v in range(5)]
    b = [one(app, bounded, "doc-c", v) for v in range(5)]
    assert len({j.id for j in a}) == 1 and len({j.id for j in b}) == 1 and a[0].id != b[0].id
    assert a[-1].result(timeout=60) == 4 and b[-1].result(timeout=60) == 4
    assert len(r.lrange("flowtest:runs:doc-b", 0, -1)) == 1


def test_debounce_max_runs_a_key_under_a_constant_stream(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    """A call every 0.1 s never leaves 0.5 s of quiet; debounce_max=2 runs it anyway."""
    r = redis.Redis.from_url(redis_url)
    start_worker()
    first = one(app, bounded, "doc-d", 0)
    v = 0
    while r.llen("flowtest:runs:doc-d") == 0:
        v += 1
        assert v < 600, "no run within 60 s of a constant stream: debounce_max did not hold"
        one(app, bounded, "doc-d", v)
        time.sleep(0.1)
    ran = first.result(timeout=60)
    assert 0 < ran <= v  # the arguments of a call of the stream, not the first's
    # the stream goes on: a new job of the key takes the later calls
    later = one(app, bounded, "doc-d", v + 1)
    assert later.id != first.id


def test_a_call_can_debounce_on_its_own(app: kubeq.App, start_worker: StartWorker) -> None:
    jobs = [
        one(app, qtasks.add, 1, i, debounce=0.3, debounce_key="sums", queue="default")
        for i in range(10)
    ]
    assert len({j.id for j in jobs}) == 1
    start_worker()
    assert jobs[0].result(timeout=60) == 10


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"debounce": -1}, "debounce must be > 0"),
        ({"debounce": 0}, "debounce must be > 0"),
        ({"debounce": 1, "debounce_max": 0.5}, "debounce_max must be at least debounce"),
        ({"debounce_max": 3}, "debounce_max needs debounce"),
        ({"singleton": "newest"}, "singleton must be one of skip, replace"),
        ({"debounce": 1, "singleton": "skip"}, "either debounce or singleton"),
        ({"debounce": 1, "debounce_key": ""}, "debounce_key must be a non-empty"),
        ({"singleton_key": "k"}, "singleton_key needs singleton"),
        ({"debounce": 1, "job_id": "mine"}, "job_id cannot be given"),
        ({"debounce": 1, "delay": 5}, "delay and eta cannot be given"),
    ],
)
def test_bad_options_name_the_field(app: kubeq.App, options: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        app.enqueue_many([qtasks.add.s(1, 2).set(**options)])
    assert app.redis.zcard(QueueKeys.of("default").ready) == 0


def test_a_key_function_that_raises_names_the_field(app: kubeq.App) -> None:
    task = app.task(name="t.bad", debounce=1, debounce_key=lambda x: x["doc"])(lambda x: x)
    with pytest.raises(ValueError, match=r"its debounce_key function failed.*TypeError"):
        task.delay(5)
    with pytest.raises(ValueError, match="singleton must be one of"):
        app.task(name="t.worse", singleton="latest")(lambda: None)


def test_2000_calls_for_20_keys_run_each_key_once_with_its_last_arguments(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    """Each key's 100 calls come from one thread (so "last" is defined), the 20 keys at once."""
    from concurrent.futures import ThreadPoolExecutor

    r = redis.Redis.from_url(redis_url)
    task = qtasks.app.tasks["flowtasks.reindex_keyed"]

    def burst(k: int) -> list[kubeq.Job]:
        return [app.enqueue_many([task.s(f"key-{k}", v)])[0] for v in range(100)]

    with ThreadPoolExecutor(20) as pool:
        handles = list(pool.map(burst, range(20)))
    start_worker("--concurrency", "8")
    start_worker("--concurrency", "8")
    for k, jobs in enumerate(handles):
        assert len({j.id for j in jobs}) == 1, f"key-{k} made more than one job"
        assert {j.result(timeout=90) for j in jobs} == {99}
    for k in range(20):
        assert r.lrange(f"flowtest:runs:key-{k}", 0, -1) == [b"99"], f"key-{k}"


def test_awaited_calls_join_the_same_job(app: kubeq.App, start_worker: StartWorker) -> None:
    import asyncio

    async def burst() -> list[kubeq.Job]:
        calls = [reindex.s("doc-async", v) for v in range(5)]
        return [(await app.aenqueue_many([c]))[0] for c in calls]

    jobs = asyncio.run(burst())
    assert len({j.id for j in jobs}) == 1 and [j.created for j in jobs[:2]] == [True, False]
    start_worker()
    assert jobs[-1].result(timeout=60) == {"doc": "doc-async", "version": 4}
