"""Celery with the Redis broker: tasks and scenarios (peer venv). See common.py.

No result backend (results off for the no-op). Celery's default worker is the prefork pool
with one child per core (2 here) under a parent: for ONE worker process we run
default: ``celery worker --concurrency 1`` (the default prefork pool, one child runs jobs)
best:    the fastest single-process setting we found for no-op jobs on 2 cores (below).
"""

from __future__ import annotations

import common
from celery import Celery, group

app = Celery("celery_bench", broker=common.url())
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop() -> None:
    pass


@app.task(name="bench.mark")
def mark(tag: str) -> None:
    common.record_mark(tag)


@app.task(name="bench.lat")
def lat(i: int) -> None:
    common.record_latency(i)


BEST = [
    "--pool",
    "solo",
    "--prefetch-multiplier",
    "64",
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
]


class CeleryBench(common.System):
    name = "celery"
    bulk_api = "group(noop.s() ...).apply_async() (one publish per job)"
    settings_doc = {  # noqa: RUF012
        "default": "celery worker -c 1 (prefork pool, 1 child; prefetch multiplier 4)",
        "best": "celery worker " + " ".join(BEST),
    }

    def enqueue_noop(self, n: int) -> None:
        for _ in range(n):
            noop.delay()

    def enqueue_noop_bulk(self, n: int) -> None:
        group(noop.s() for _ in range(n)).apply_async()

    def enqueue_mark(self, tag: str) -> None:
        mark.delay(tag)

    def enqueue_latency(self, i: int) -> None:
        lat.delay(i)

    def worker_argv(self, settings: str) -> list[str]:
        argv = [
            common.venv_bin("celery"),
            "-A",
            "celery_bench",
            "worker",
            "-Q",
            "celery",
            "--loglevel",
            "WARNING",
        ]
        return argv + (["--concurrency", "1"] if settings == "default" else BEST)

    def worker_argv_n(self, settings: str, i: int) -> list[str]:
        return [*self.worker_argv(settings), "-n", f"bench{i}@%h"]  # a name of its own each

    def backlog(self) -> int:
        return int(self.r.llen("celery"))  # type: ignore[arg-type]

    def close(self) -> None:
        app.close()


SYSTEM = CeleryBench
