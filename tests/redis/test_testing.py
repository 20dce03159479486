"""kubeq.testing against a real Redis: drain (an in-process burst worker), `kubeq worker
--burst`, and the pytest plugin's fixtures as a user's test suite sees them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import qtasks

import kubeq
from kubeq.testing import adrain, drain
from tests.redis.workers import KUBEQ, StartWorker

failures: dict[str, int] = {}


def make_app(url: str) -> kubeq.App:
    app = kubeq.App(url)

    @app.task(name="double", queue="work")
    def double(x: int) -> int:
        return 2 * x

    @app.task(name="fails_once", queue="work", max_attempts=3, backoff_min=0, backoff_max=0)
    def fails_once(tag: str) -> str:
        failures[tag] = failures.get(tag, 0) + 1
        if failures[tag] == 1:
            raise ConnectionError("first attempt fails")
        return tag

    @app.task(name="slow", queue="other")
    async def slow(x: int) -> int:
        await asyncio.sleep(0.2)
        return x

    return app


def test_drain_runs_every_ready_job_then_returns(redis_url: str) -> None:
    app = make_app(redis_url)
    double, fails_once = app.tasks["double"], app.tasks["fails_once"]
    jobs = [double.delay(i) for i in range(20)]
    flaky = fails_once.delay("drained")
    later = double.apply_async((100,), delay=3600)
    report = drain(app)
    assert (report.finished, report.retried, report.failed, report.exit_code) == (21, 1, 0, 0)
    assert [j.result(timeout=1) for j in jobs] == [2 * i for i in range(20)]
    assert flaky.result(timeout=1) == "drained" and flaky.info().attempts == 2
    assert later.status() == "scheduled"  # a job for later is left for later
    stats = app.queue("work").stats()
    assert (stats.backlog, stats.in_flight, stats.live_workers) == (0, 0, 0)
    app.close()


def test_drain_only_the_queues_asked_for_and_from_async_code(redis_url: str) -> None:
    app = make_app(redis_url)
    slow, double = app.tasks["slow"], app.tasks["double"]

    async def main() -> tuple[int, str, int]:
        waiting = await double.adelay(1)
        jobs = [await slow.adelay(i) for i in range(5)]
        report = await adrain(app, "other", concurrency=5)
        total = sum([await j.aresult(timeout=1) for j in jobs])
        status = await waiting.astatus()
        await app.aclose()
        return report.finished, status, total

    assert asyncio.run(main()) == (5, "queued", 10)
    assert drain(app, ["work"]).finished == 1  # a sync drain works from sync code too
    app.close()


def test_worker_burst_exits_when_the_queues_are_empty(app: kubeq.App, redis_url: str) -> None:
    q = app.queue("burst")
    jobs = q.enqueue_many([qtasks.add.s(i, 1) for i in range(10)])
    later = q.enqueue_call(qtasks.add, (0, 0), delay=3600)
    out = subprocess.run(
        [KUBEQ, "worker", "qtasks", "--queue", "burst", "--burst"],
        env={**os.environ, "KUBEQ_REDIS_URL": redis_url, "PYTHONPATH": str(Path(__file__).parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "burst: the queues are empty and nothing is in flight" in out.stderr
    assert [j.result(timeout=1) for j in jobs] == [i + 1 for i in range(10)]
    assert later.status() == "scheduled"


def test_burst_worker_with_an_empty_queue_exits_at_once(
    redis_url: str, start_worker: StartWorker
) -> None:
    worker = start_worker("--queue", "empty", "--burst")
    assert worker.wait(60) == 0


def test_the_pytest_plugin_gives_users_redis_and_a_worker(tmp_path: Path) -> None:
    (tmp_path / "shop_tasks.py").write_text(
        textwrap.dedent(
            """
            import kubeq

            app = kubeq.App()

            @app.task(max_attempts=2, backoff_min=0, backoff_max=0)
            def ship(order: int) -> str:
                return f"order {order} shipped"
            """
        )
    )
    (tmp_path / "test_shop.py").write_text(
        textwrap.dedent(
            """
            import kubeq
            import shop_tasks

            def test_ship(kubeq_redis, kubeq_worker):
                shop_tasks.app.redis_url = kubeq_redis  # before the App's first use
                job = shop_tasks.ship.delay(7)
                assert job.status() == "queued"
                report = kubeq_worker(shop_tasks.app)
                assert report.finished == 1
                assert job.result(timeout=1) == "order 7 shipped"

            def test_each_test_gets_an_empty_redis(kubeq_redis):
                app = kubeq.App(kubeq_redis)
                assert app.queue().stats().backlog == 0
            """
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_shop.py"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout


@pytest.mark.parametrize("queues", [["work"], "work", None])
def test_drain_queue_arguments(redis_url: str, queues: object) -> None:
    app = make_app(redis_url)
    app.tasks["double"].delay(4)
    assert drain(app, queues).finished == 1  # type: ignore[arg-type]
    app.close()


def test_drain_runs_the_follow_ups_of_the_jobs_it_runs(redis_url: str) -> None:
    """Chain links, a chord's callback and a released child are enqueued by the hand-off of
    the jobs drain runs: one drain(app) runs them too."""
    app = make_app(redis_url)
    double = app.tasks["double"]

    @app.task(name="total", queue="work")
    def total(results: list[int]) -> int:
        return sum(results)

    links = kubeq.chain(double.s(1), double.s(), double.s()).delay(app)
    chord = kubeq.chord([double.s(i) for i in range(4)], total.s()).delay(app)
    parent = double.delay(10)
    (child,) = app.enqueue_many([double.s(5).set(depends_on=[parent])])
    report = drain(app)
    assert links.result(timeout=1) == 8
    assert chord.result(timeout=1) == 12
    assert child.result(timeout=1) == 10
    assert report.finished == 3 + 5 + 2
    app.close()
