"""RQ: tasks and scenarios (runs with the peer venv). See common.py.

default: ``rq worker`` (the Worker class: it forks a work horse for every job).
best:    ``rq worker -w rq.worker.SimpleWorker`` (runs jobs in the worker process; RQ has
         no concurrency within one process).
"""

from __future__ import annotations

import common
from rq import Queue


def noop() -> None:
    pass


def mark(tag: str) -> None:
    common.record_mark(tag)


def lat(i: int) -> None:
    common.record_latency(i)


class RQ(common.System):
    name = "rq"
    bulk_api = "Queue.enqueue_many([Queue.prepare_data(noop) ...]) (one pipeline)"
    settings_doc = {  # noqa: RUF012
        "default": "rq worker (forks a work horse per job)",
        "best": "rq worker -w rq.worker.SimpleWorker (no fork)",
    }

    def setup(self) -> None:
        self.q = Queue("default", connection=self.r)

    def enqueue_noop(self, n: int) -> None:
        for _ in range(n):
            self.q.enqueue(noop)

    def enqueue_noop_bulk(self, n: int) -> None:
        self.q.enqueue_many([Queue.prepare_data(noop) for _ in range(n)])

    def enqueue_mark(self, tag: str) -> None:
        self.q.enqueue(mark, tag)

    def enqueue_latency(self, i: int) -> None:
        self.q.enqueue(lat, i)

    def worker_argv(self, settings: str) -> list[str]:
        argv = [common.venv_bin("rq"), "worker", "default", "-u", self.url, "-q"]
        if settings == "best":
            argv += ["-w", "rq.worker.SimpleWorker"]
        return argv

    def backlog(self) -> int:
        return len(self.q)


SYSTEM = RQ
