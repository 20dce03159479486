"""One queue, RQ style: enqueue, bulk enqueue, stats, pause/resume, purge, dead letters.

Every enqueue, single or bulk, goes through ``App.enqueue_many`` (the plan of ``enqueue``):
one ``enqueue.lua`` call per queue, all pipelined, so a thousand jobs cost one round trip.
A partitioned queue is one queue here: every method acts on all its partitions (the App's,
or those given by the ``kubeq`` command, which finds them in Redis).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from kubeq.client import durable, search
from kubeq.client.jobs import Job
from kubeq.client.tasks import Enqueuer, Task, task_name
from kubeq.options import Call, RateLimit
from kubeq.store import fairness, partitions
from kubeq.store.backend import Backend
from kubeq.store.ids import new_job_id
from kubeq.store.jobfields import JOB_FIELDS, JobInfo, text
from kubeq.store.keys import QueueKeys
from kubeq.store.stats import QueueStats, read_stats, read_stats_async

TaskRef = Callable[..., Any] | Task[Any, Any] | str

__all__ = ["Queue", "Requeued", "TaskRef", "new_job_id"]


@dataclass(frozen=True)
class Requeued:
    """What a requeue of dead letters did: ``count`` jobs run again; ``refused`` maps each
    one left a dead letter to why (its debounce or singleton key is held by a newer job)."""

    count: int
    refused: dict[str, str] = field(default_factory=dict)


class QueueApp(Backend, Enqueuer, Protocol):
    """What a Queue needs of its App (``kubeq.App`` is one)."""


class Queue:
    """A handle on one named queue of an App."""

    def __init__(self, app: QueueApp, name: str, parts: Sequence[str] | None = None) -> None:
        """``parts``: the queues holding its jobs when the App does not declare them."""
        self.app = app
        self.name = name
        self.keys = QueueKeys.of(name, app.prefix)
        self._parts = list(parts) if parts else None

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
        fair_key, expires, soft_timeout."""
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

    # -- signals (docs/durable.md) -----

    def signal(
        self, key: str, payload: Any = None, *, mode: str = "all", ttl: float | None = None
    ) -> int:
        """Deliver ``payload`` (JSON) on ``key`` to the jobs of this queue waiting on it
        (``kubeq.wait_for``); returns how many woke. ``mode="all"`` wakes every waiter and
        keeps the payload ``ttl`` seconds (default ``defaults.SIGNAL_TTL_SECONDS``; 0: not
        kept) for jobs that wait later; ``mode="one"`` wakes the oldest waiter, or keeps the
        payload for the first job that waits."""
        calls = durable.signal_calls(self._keys(), key, payload, mode, ttl)
        return durable.send_signal(self.app.redis, calls)

    async def asignal(
        self, key: str, payload: Any = None, *, mode: str = "all", ttl: float | None = None
    ) -> int:
        """``signal`` for async code."""
        calls = durable.signal_calls(self._keys(), key, payload, mode, ttl)
        return await durable.asend_signal(self.app.aredis, calls)

    # -- state -----

    @property
    def partitions(self) -> list[str]:
        """The queues holding this queue's jobs: its partitions, or itself."""
        return self._parts or self.app.partitioner.expand([self.name])

    def _keys(self) -> list[QueueKeys]:
        return [QueueKeys.of(name, self.app.prefix) for name in self.partitions]

    def find(
        self,
        status: str | None = None,
        *,
        task: str | None = None,
        tags: Sequence[str] | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> search.Found:
        """Jobs of this queue (every partition) matching every condition given, newest
        first: ``status`` (``search.STATUSES``; finished and cancelled ones too, while their
        records live), ``task`` (exact name), ``tags`` (the job carries each), ``since``
        (seconds: enqueued within, dead-lettered within for ``failed``). No SCAN: each
        state's set or the task and tag index (``kubeq.client.search``)."""
        return search.find(
            self.app, self.partitions, status, task=task, tags=tags, since=since, limit=limit
        )

    async def afind(
        self,
        status: str | None = None,
        *,
        task: str | None = None,
        tags: Sequence[str] | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> search.Found:
        """``find`` for async code."""
        return await search.afind(
            self.app, self.partitions, status, task=task, tags=tags, since=since, limit=limit
        )

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

    def set_weights(self, weights: Mapping[str, float | None], *, replace: bool = False) -> None:
        """Weights of fairness keys (docs/fairness.md): among ready jobs of one priority a key
        of weight 3 is served three times as often as one of weight 1 (the default). None
        removes a key's weight; ``replace`` drops every weight not given; the key "" weighs
        the jobs without a key. Every partition gets them; the next fetch applies them."""
        fairness.set_weights(
            self.app.redis, self.partitions, weights, self.app.prefix, replace=replace
        )

    def weights(self) -> dict[str, float]:
        """The weights set on this queue (a key not listed weighs 1)."""
        return fairness.read_weights(self.app.redis, self.partitions[0], self.app.prefix)

    def fair_stats(self, top: int = 10, scan: int = 1000) -> fairness.FairStats:
        """Its fairness keys with ready jobs: how many, and the ``top`` whose next job has
        waited longest (backlog, wait, weight), looking at ``scan`` keys at most."""
        parts = fairness.read_fair_stats(
            self.app.redis, self.partitions, self.app.prefix, top=top, scan=scan
        )
        return fairness.combine(self.name, parts, top)

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
        ``"/h"``); None removes the limit. Workers apply it at their next fetch. A
        partitioned queue gets the limit on each partition (N times the rate in all)."""
        rl = None if rate is None else RateLimit.parse(rate)
        for keys in self._keys():
            if rl is None:
                self.app.redis.delete(keys.rate_limit)
                continue
            with self.app.redis.pipeline() as pipe:  # MULTI (one key): never half a limit
                pipe.delete(keys.rate_limit)  # and no longer one a TaskQueue owns
                pipe.hset(
                    keys.rate_limit, mapping={"n": rl.count, "ms": rl.period_ms, "b": rl.burst}
                )
                pipe.execute()

    def rate_limit(self) -> RateLimit | None:
        """The queue's rate limit (a partitioned queue's first partition that has one, per
        partition), or None."""
        for keys in self._keys():
            # the cast: redis-py before 8.0 types a reply as "T | Awaitable[T]"
            read = self.app.redis.hmget(keys.rate_limit, ["n", "ms", "b"])
            n, ms, b = cast("list[bytes | None]", read)
            if n is not None and ms is not None:
                return RateLimit(int(n), int(ms), int(b or 1))
        return None

    def is_paused(self) -> bool:
        """Whether workers take no jobs from it (from any partition of a partitioned one)."""
        return any(self.app.redis.exists(keys.paused) for keys in self._keys())

    def purge(self) -> int:
        """Delete every waiting job (ready and delayed). Running jobs and dead letters stay.
        A purged job that other jobs depend on ends ``cancelled`` (reason "purged") instead,
        so its children are resolved as a cancelled parent's (docs/workflows.md)."""
        deleted = 0
        for keys in self._keys():
            while True:
                n = int(self.app.scripts.purge(keys=keys.script_keys, args=[keys.base, 1000]))
                deleted += n
                if n == 0:
                    break
        return deleted

    # -- dead letters -----

    def _dead(self, limit: int | None) -> list[tuple[QueueKeys, bytes]]:
        """(queue, id as stored) of the most recent dead letters, over every partition."""
        end = -1 if limit is None else limit - 1
        found: list[tuple[float, QueueKeys, bytes]] = []
        for keys in self._keys():
            read: list[tuple[bytes, float]] = self.app.redis.zrevrange(  # type: ignore[assignment]
                keys.dead, 0, end, withscores=True
            )
            found += [(score, keys, job_id) for job_id, score in read]
        found.sort(key=lambda f: -f[0])  # stable: one partition's order is kept
        return [(keys, job_id) for _, keys, job_id in found[: None if limit is None else limit]]

    def dead_letter_ids(self, limit: int | None = None) -> list[str]:
        """Ids in the dead-letter queue (of every partition), most recent first."""
        return [text(job_id) for _, job_id in self._dead(limit)]

    def dead_letters(self, limit: int = 100) -> list[JobInfo]:
        """The most recent dead letters with their reason and error, in one round trip
        (plus one per partition); each names the queue (partition) that holds it. A dead
        letter whose data is malformed is still listed, with what could be read."""
        dead = self._dead(limit)
        pipe = self.app.redis.pipeline(transaction=False)
        for keys, job_id in dead:  # the id as stored, even if it is not valid UTF-8
            key = keys.base.encode() + b"job:" + job_id  # (redis-py < 8.0 types it str)
            pipe.hmget(key, list(JOB_FIELDS))  # type: ignore[arg-type, unused-ignore]
        infos = []
        for (keys, job_id), read in zip(dead, pipe.execute(raise_on_error=False), strict=True):
            values: list[Any] = read
            if isinstance(read, Exception):  # a key of another type: still listed
                values = [b"failed"] + [None] * (len(JOB_FIELDS) - 1)
                values[JOB_FIELDS.index("reason")] = f"unreadable job data: {read}".encode()
            infos.append(JobInfo.from_fields(text(job_id), keys.name, values))
        return infos

    def _dead_action(self, action: str, ids: Iterable[str] | None) -> Requeued:
        """Run dead.lua on each partition, over its own dead letters or the ids given (a
        partition ignores an id it does not hold)."""
        given = list(ids) if ids is not None else None
        done = 0
        refused: dict[str, str] = {}
        for keys in self._keys():
            chosen = given if given is not None else self._dead_ids_of(keys)
            for start in range(0, len(chosen), 500):
                batch = chosen[start : start + 500]
                n, *why = self.app.scripts.dead(
                    keys=keys.script_keys, args=[keys.base, action, *batch]
                )
                done += int(n)
                refused.update({text(i): text(w) for i, w in zip(why[::2], why[1::2], strict=True)})
        return Requeued(done, refused)

    def _dead_ids_of(self, keys: QueueKeys) -> list[str]:
        ids: list[bytes] = self.app.redis.zrevrange(keys.dead, 0, -1)  # type: ignore[assignment]
        return [text(i) for i in ids]

    def requeue_dead(self, ids: Iterable[str] | None = None) -> int:
        """Put dead letters (all, or these ids) back to run, with fresh attempt counts; the
        number requeued (``requeue`` also says why any was refused)."""
        return self._dead_action("requeue", ids).count

    def requeue(self, ids: Iterable[str] | None = None) -> Requeued:
        """``requeue_dead``, telling which dead letters were refused and why: a job of a
        debounced or singleton key takes its key back, unless a newer job of the key holds
        it and wins by the mode's rule (docs/patterns.md); it then stays a dead letter."""
        return self._dead_action("requeue", ids)

    def purge_dead(self, ids: Iterable[str] | None = None) -> int:
        """Delete dead letters (all, or these ids) for good."""
        return self._dead_action("purge", ids).count
