"""One queue, RQ style: enqueue, bulk enqueue, stats, pause/resume, purge, dead letters.

Every enqueue, single or bulk, goes through ``App.enqueue_many`` (the plan of ``enqueue``):
one ``enqueue.lua`` call per queue, all pipelined, so a thousand jobs cost one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, cast

from kubeq.client.jobs import Job
from kubeq.client.tasks import Enqueuer, Task, task_name
from kubeq.options import Call, RateLimit
from kubeq.store import partitions
from kubeq.store.backend import Backend
from kubeq.store.ids import new_job_id
from kubeq.store.jobfields import JOB_FIELDS, JobInfo, text
from kubeq.store.keys import QueueKeys
from kubeq.store.stats import QueueStats, read_stats, read_stats_async

TaskRef = Callable[..., Any] | Task[Any, Any] | str

__all__ = ["Queue", "TaskRef", "new_job_id"]


class QueueApp(Backend, Enqueuer, Protocol):
    """What a Queue needs of its App (``kubeq.App`` is one)."""

    @property
    def partitioner(self) -> partitions.Partitioner:
        """How the App spreads each queue's jobs over its partitions."""
        ...


class Queue:
    """A handle on one named queue of an App."""

    def __init__(self, app: QueueApp, name: str) -> None:
        self.app = app
        self.name = name
        self.keys = QueueKeys.of(name, app.prefix)

    def __repr__(self) -> str:
        return f"<Queue {self.name}>"

    # -- enqueue -----

    def prepare(self, func: TaskRef, *args: Any, **kwargs: Any) -> Call:
        """A Call of ``func`` on this queue, for ``enqueue_many`` (options via ``.set()``)."""
        if isinstance(func, Task):
            return func.s(*args, **kwargs).set(queue=self.name)
        return Call(task_name(func), args, kwargs, queue=self.name)

    def enqueue(self, func: TaskRef, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``func(*args, **kwargs)`` on this queue. ``func`` is a task, a function
        registered with ``@app.task``, or a task name."""
        return self.enqueue_many([self.prepare(func, *args, **kwargs)])[0]

    def enqueue_call(
        self,
        func: TaskRef,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Enqueue with per-call options: priority, delay, eta, job_id, timeout,
        result_ttl, max_attempts, backoff_min, backoff_max, max_deliveries, limit_key,
        expires, soft_timeout."""
        call = self.prepare(func, *args, **(kwargs or {}))
        return self.enqueue_many([call.set(**options)])[0]

    def enqueue_many(self, calls: Iterable[Call]) -> list[Job]:
        """Enqueue every call on this queue in one round trip; jobs in the same order."""
        return self.app.enqueue_many(calls, queue=self.name)

    async def aenqueue(self, func: TaskRef, *args: Any, **kwargs: Any) -> Job:
        """``enqueue`` for async code."""
        return (await self.aenqueue_many([self.prepare(func, *args, **kwargs)]))[0]

    async def aenqueue_call(
        self,
        func: TaskRef,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """``enqueue_call`` for async code (the same per-call options)."""
        call = self.prepare(func, *args, **(kwargs or {}))
        return (await self.aenqueue_many([call.set(**options)]))[0]

    async def aenqueue_many(self, calls: Iterable[Call]) -> list[Job]:
        """``enqueue_many`` for async code: one round trip on the running loop."""
        return await self.app.aenqueue_many(calls, queue=self.name)

    # -- state -----

    @property
    def partitions(self) -> list[str]:
        """The queues holding this queue's jobs: its partitions, or itself."""
        return self.app.partitioner.expand([self.name])

    def stats(self) -> QueueStats:
        """This queue's numbers (its partitions added up), in one round trip."""
        parts = read_stats(self.app.redis, self.partitions, self.app.prefix)
        return partitions.combine(self.name, parts)

    async def astats(self) -> QueueStats:
        """``stats`` for async code."""
        parts = await read_stats_async(self.app.aredis, self.partitions, self.app.prefix)
        return partitions.combine(self.name, parts)

    def job(self, job_id: str) -> Job:
        return Job(self.app, self.name, job_id)

    def pause(self) -> None:
        """Workers stop taking jobs from this queue (running jobs finish); enqueue goes on.
        A partitioned queue pauses every partition."""
        for name in self.partitions:
            self.app.redis.set(QueueKeys.of(name, self.app.prefix).paused, "1")

    def resume(self) -> None:
        for name in self.partitions:
            self.app.redis.delete(QueueKeys.of(name, self.app.prefix).paused)

    def set_rate_limit(self, rate: str | None) -> None:
        """Limit the starts of this queue's jobs across every worker (``"20/s"``, ``"/m"``,
        ``"/h"``); None removes the limit. Workers apply it at their next fetch."""
        if rate is None:
            self.app.redis.delete(self.keys.rate_limit)
            return
        rl = RateLimit.parse(rate)
        with self.app.redis.pipeline() as pipe:  # MULTI: never half a limit
            pipe.delete(self.keys.rate_limit)  # and no longer one a TaskQueue owns
            pipe.hset(
                self.keys.rate_limit, mapping={"n": rl.count, "ms": rl.period_ms, "b": rl.burst}
            )
            pipe.execute()

    def rate_limit(self) -> RateLimit | None:
        """The queue's rate limit, or None."""
        # the cast: redis-py before 8.0 types a reply as "T | Awaitable[T]"
        fields = cast(
            "list[bytes | None]", self.app.redis.hmget(self.keys.rate_limit, ["n", "ms", "b"])
        )
        n, ms, b = fields
        if n is None or ms is None:
            return None
        return RateLimit(int(n), int(ms), int(b or 1))

    def is_paused(self) -> bool:
        return bool(self.app.redis.exists(self.keys.paused))

    def purge(self) -> int:
        """Delete every waiting job (ready and delayed). Running jobs and dead letters stay."""
        deleted = 0
        while True:
            n = int(self.app.scripts.purge(keys=self.keys.script_keys, args=[self.keys.base, 1000]))
            deleted += n
            if n == 0:
                return deleted

    # -- dead letters -----

    def dead_letter_ids(self, limit: int | None = None) -> list[str]:
        """Ids in the dead-letter queue, most recent first."""
        end = -1 if limit is None else limit - 1
        ids: list[bytes] = self.app.redis.zrevrange(self.keys.dead, 0, end)  # type: ignore[assignment]
        return [text(i) for i in ids]

    def dead_letters(self, limit: int = 100) -> list[JobInfo]:
        """The most recent dead letters with their reason and error, in one round trip.
        A dead letter whose data is malformed is still listed, with what could be read."""
        end = limit - 1
        raw: list[bytes] = self.app.redis.zrevrange(self.keys.dead, 0, end)  # type: ignore[assignment]
        pipe = self.app.redis.pipeline(transaction=False)
        for job_id in raw:  # the id as stored, even if it is not valid UTF-8
            key = self.keys.base.encode() + b"job:" + job_id  # (redis-py < 8.0 types it str)
            pipe.hmget(key, list(JOB_FIELDS))  # type: ignore[arg-type, unused-ignore]
        infos = []
        for job_id, read in zip(raw, pipe.execute(raise_on_error=False), strict=True):
            values: list[Any] = read
            if isinstance(read, Exception):  # a key of another type: still listed
                values = [b"failed"] + [None] * (len(JOB_FIELDS) - 1)
                values[JOB_FIELDS.index("reason")] = f"unreadable job data: {read}".encode()
            infos.append(JobInfo.from_fields(text(job_id), self.name, values))
        return infos

    def _dead_action(self, action: str, ids: Iterable[str] | None) -> int:
        chosen = list(ids) if ids is not None else self.dead_letter_ids()
        done = 0
        for start in range(0, len(chosen), 500):
            batch = chosen[start : start + 500]
            done += int(
                self.app.scripts.dead(
                    keys=self.keys.script_keys, args=[self.keys.base, action, *batch]
                )
            )
        return done

    def requeue_dead(self, ids: Iterable[str] | None = None) -> int:
        """Put dead letters (all, or these ids) back to run, with fresh attempt counts."""
        return self._dead_action("requeue", ids)

    def purge_dead(self, ids: Iterable[str] | None = None) -> int:
        """Delete dead letters (all, or these ids) for good."""
        return self._dead_action("purge", ids)
