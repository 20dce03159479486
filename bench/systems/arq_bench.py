"""arq: tasks and scenarios (peer venv). See common.py.

arq is asyncio-only: tasks are ``async def``. It has no bulk enqueue API.
default: ``arq arq_bench.WorkerSettings`` (max_jobs 10, poll_delay 0.5 s)
best:    ``arq arq_bench.BestSettings`` (max_jobs and poll_delay below)
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import common
from arq import create_pool
from arq.connections import RedisSettings


async def noop(ctx: dict[str, Any]) -> None:
    pass


async def mark(ctx: dict[str, Any], tag: str) -> None:
    await ctx["redis"].rpush(common.MARKS, f"{tag} {__import__('time').time():.6f}")


async def lat(ctx: dict[str, Any], i: int) -> None:
    await ctx["redis"].rpush(common.LAT, f"{i} {__import__('time').time():.6f}")


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop, mark, lat]
    redis_settings = RedisSettings.from_dsn(common.url())


class BestSettings:  # arq reads only the class's own attributes: no inheritance
    functions: ClassVar[list[Any]] = [noop, mark, lat]
    redis_settings = RedisSettings.from_dsn(common.url())
    max_jobs = 100
    poll_delay = 0.05


class Arq(common.System):
    name = "arq"
    bulk_api = None
    async_api = "await pool.enqueue_job('noop')"
    settings_doc: ClassVar[dict[str, str]] = {
        "default": "arq WorkerSettings (max_jobs 10, poll_delay 0.5 s)",
        "best": f"arq (max_jobs {BestSettings.max_jobs}, poll_delay {BestSettings.poll_delay} s)",
    }

    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = self.loop.run_until_complete(create_pool(RedisSettings.from_dsn(self.url)))

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.close()

    def enqueue_noop(self, n: int) -> None:
        async def go() -> None:
            for _ in range(n):
                await self.pool.enqueue_job("noop")

        self.loop.run_until_complete(go())

    def enqueue_noop_async(self, n: int) -> None:
        self.enqueue_noop(n)  # arq's one call per job is already the awaited one

    def prefill(self, n: int) -> None:  # no bulk API: many enqueue_job calls at once
        async def go() -> None:
            for start in range(0, n, 500):
                await asyncio.gather(
                    *(self.pool.enqueue_job("noop") for _ in range(min(500, n - start)))
                )

        self.loop.run_until_complete(go())

    def enqueue_mark(self, tag: str) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("mark", tag))

    def enqueue_latency(self, i: int) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("lat", i))

    def worker_argv(self, settings: str) -> list[str]:
        cls = "WorkerSettings" if settings == "default" else "BestSettings"
        return [common.venv_bin("arq"), f"arq_bench.{cls}"]

    def backlog(self) -> int:
        return int(self.r.zcard("arq:queue"))  # type: ignore[arg-type]


SYSTEM = Arq
