"""The client API in two forms, so tests/redis/test_client.py runs every test against both.

``SyncApi`` calls the sync methods (``delay``, ``enqueue``, ``result``...); ``AsyncApi`` calls
their async twins (``adelay``, ``aenqueue``, ``aresult``...) on one event loop kept for the
whole test, as an async service would. The methods only dispatch: what is asserted is what
a user of either API observes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import kubeq


class SyncApi:
    mode = "sync"

    def __init__(self, app: kubeq.App) -> None:
        self.app = app

    def delay(self, task: kubeq.Task[Any, Any], *args: Any, **kwargs: Any) -> kubeq.Job:
        return task.delay(*args, **kwargs)

    def apply_async(self, task: kubeq.Task[Any, Any], args: Sequence[Any], **opts: Any) -> Any:
        return task.apply_async(tuple(args), **opts)

    def enqueue(self, queue: str, func: Any, *args: Any, **kwargs: Any) -> kubeq.Job:
        return self.app.queue(queue).enqueue(func, *args, **kwargs)

    def enqueue_call(self, queue: str, func: Any, args: Sequence[Any], **opts: Any) -> kubeq.Job:
        return self.app.queue(queue).enqueue_call(func, args, **opts)

    def enqueue_many(self, calls: Iterable[kubeq.Call], queue: str | None = None) -> list[Any]:
        if queue is None:
            return self.app.enqueue_many(calls)
        return self.app.queue(queue).enqueue_many(calls)

    def result(self, job: kubeq.Job, timeout: float | None = None) -> Any:
        return job.result(timeout=timeout)

    def status(self, job: kubeq.Job) -> str:
        return job.status()

    def info(self, job: kubeq.Job) -> kubeq.JobInfo:
        return job.info()

    def cancel(self, job: kubeq.Job) -> bool:
        return job.cancel()

    def stats(self, queue: str) -> kubeq.QueueStats:
        return self.app.queue(queue).stats()

    @contextlib.contextmanager
    def commands(self) -> Iterator[list[str]]:
        """The names of the commands this API's client sends (not pipelines) in the block."""
        sent: list[str] = []
        client = self.app.redis
        real = client.execute_command

        def counting(*args: Any, **options: Any) -> Any:
            sent.append(str(args[0]))
            return real(*args, **options)

        client.execute_command = counting  # type: ignore[method-assign]
        try:
            yield sent
        finally:
            del client.execute_command


class AsyncApi(SyncApi):
    mode = "async"

    def __init__(self, app: kubeq.App) -> None:
        super().__init__(app)
        self.runner = asyncio.Runner()

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def close(self) -> None:
        self.runner.run(self.app.aclose())
        self.runner.close()

    def delay(self, task: kubeq.Task[Any, Any], *args: Any, **kwargs: Any) -> kubeq.Job:
        return self.run(task.adelay(*args, **kwargs))

    def apply_async(self, task: kubeq.Task[Any, Any], args: Sequence[Any], **opts: Any) -> Any:
        return self.run(task.aapply_async(tuple(args), **opts))

    def enqueue(self, queue: str, func: Any, *args: Any, **kwargs: Any) -> kubeq.Job:
        return self.run(self.app.queue(queue).aenqueue(func, *args, **kwargs))

    def enqueue_call(self, queue: str, func: Any, args: Sequence[Any], **opts: Any) -> kubeq.Job:
        return self.run(self.app.queue(queue).aenqueue_call(func, args, **opts))

    def enqueue_many(self, calls: Iterable[kubeq.Call], queue: str | None = None) -> list[Any]:
        if queue is None:
            return self.run(self.app.aenqueue_many(calls))
        return self.run(self.app.queue(queue).aenqueue_many(calls))

    def result(self, job: kubeq.Job, timeout: float | None = None) -> Any:
        return self.run(job.aresult(timeout=timeout))

    def status(self, job: kubeq.Job) -> str:
        return self.run(job.astatus())

    def info(self, job: kubeq.Job) -> kubeq.JobInfo:
        return self.run(job.ainfo())

    def cancel(self, job: kubeq.Job) -> bool:
        return self.run(job.acancel())

    def stats(self, queue: str) -> kubeq.QueueStats:
        return self.run(self.app.queue(queue).astats())

    @contextlib.contextmanager
    def commands(self) -> Iterator[list[str]]:
        sent: list[str] = []

        async def client() -> Any:
            return self.app.aredis

        aclient = self.run(client())
        real = aclient.execute_command

        async def counting(*args: Any, **options: Any) -> Any:
            sent.append(str(args[0]))
            return await real(*args, **options)

        aclient.execute_command = counting
        try:
            yield sent
        finally:
            del aclient.execute_command


Api = SyncApi
