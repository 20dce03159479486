"""kubeq: tasks and scenarios (runs with the project venv). See common.py."""

from __future__ import annotations

import asyncio
import sys

import common

import kubeq

app = kubeq.App(common.url())


@app.task(name="bench.noop")
def noop() -> None:
    pass


def _noop_limited() -> None:
    """A no-op under a rate limit far above any achievable rate: what the limit costs."""


try:
    noop_limited = app.task(name="bench.noop_limited", rate_limit="1000000/s")(_noop_limited)
except TypeError:  # a kubeq without rate limits (run.py --kubeq-path of an older copy)
    noop_limited = app.task(name="bench.noop_limited")(_noop_limited)


@app.task(name="bench.mark")
def mark(tag: str) -> None:
    common.record_mark(tag)


@app.task(name="bench.lat")
def lat(i: int) -> None:
    common.record_latency(i)


class Kubeq(common.System):
    name = "kubeq"
    bulk_api = "app.enqueue_many([noop.s() ...]) (one round trip)"
    async_api = "await noop.adelay() (asyncio client)"
    settings_doc = {  # noqa: RUF012
        "default": "kubeq worker (thread pool, --concurrency 4)",
        "best": "kubeq worker --concurrency 128 (thread pool)",
        "limited": "as best, every job under rate_limit='1000000/s' (far above the drain rate)",
    }
    _argv = {  # noqa: RUF012
        "default": [],
        "best": ["--concurrency", "128"],
        "limited": ["--concurrency", "128"],
    }

    def setup(self) -> None:
        app.redis_url = self.url  # the --redis-url of the CLI (no connection made yet)
        self.app = app

    def close(self) -> None:
        self.app.close()

    def enqueue_noop(self, n: int) -> None:
        for _ in range(n):
            noop.delay()

    def enqueue_noop_bulk(self, n: int) -> None:
        task = noop_limited if self.settings == "limited" else noop
        self.app.enqueue_many([task.s() for _ in range(n)])

    def enqueue_noop_async(self, n: int) -> None:
        async def go() -> None:
            for _ in range(n):
                await noop.adelay()
            await self.app.aclose()

        asyncio.run(go())

    def enqueue_mark(self, tag: str) -> None:
        self.app.enqueue_many([mark.s(tag)])

    def enqueue_latency(self, i: int) -> None:
        self.app.enqueue_many([lat.s(i)])

    def worker_argv(self, settings: str) -> list[str]:
        return [
            # kubeq's bench venv runs kubeq from PYTHONPATH: it has no console script
            sys.executable,
            "-c",
            "import sys; from kubeq.cli import main; sys.argv[0] = 'kubeq'; sys.exit(main())",
            "worker",
            "kubeq_bench",
            "--queue",
            "default",
            "--log-level",
            "warning",
            *self._argv[settings],
        ]

    def backlog(self) -> int:
        return int(self.app.queue().stats().backlog)


SYSTEM = Kubeq
