"""Dramatiq with its RedisBroker: tasks and scenarios (peer venv). See common.py.

``dramatiq MODULE`` starts a supervisor and, by default, one worker process per core (2)
with 8 threads each. For ONE worker process:
default: ``dramatiq dramatiq_bench -p 1`` (8 threads)
best:    ``dramatiq dramatiq_bench -p 1 -t N`` (the N below)
"""

from __future__ import annotations

from typing import ClassVar

import common
import dramatiq
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=common.url())
dramatiq.set_broker(broker)

BEST_THREADS = 16


@dramatiq.actor(queue_name="default")
def noop() -> None:
    pass


@dramatiq.actor(queue_name="default")
def mark(tag: str) -> None:
    common.record_mark(tag)


@dramatiq.actor(queue_name="default")
def lat(i: int) -> None:
    common.record_latency(i)


class Dramatiq(common.System):
    name = "dramatiq"
    bulk_api = "dramatiq.group([noop.message() ...]).run() (one enqueue per job)"
    settings_doc: ClassVar[dict[str, str]] = {
        "default": "dramatiq -p 1 (8 threads)",
        "best": f"dramatiq -p 1 -t {BEST_THREADS}",
    }

    def enqueue_noop(self, n: int) -> None:
        for _ in range(n):
            noop.send()

    def enqueue_noop_bulk(self, n: int) -> None:
        dramatiq.group([noop.message() for _ in range(n)]).run()

    def enqueue_mark(self, tag: str) -> None:
        mark.send(tag)

    def enqueue_latency(self, i: int) -> None:
        lat.send(i)

    def worker_argv(self, settings: str) -> list[str]:
        threads = "8" if settings == "default" else str(BEST_THREADS)
        return [common.venv_bin("dramatiq"), "dramatiq_bench", "-p", "1", "-t", threads]

    def backlog(self) -> int:
        return int(self.r.llen("dramatiq:default"))  # type: ignore[arg-type]


SYSTEM = Dramatiq
