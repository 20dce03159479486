"""The entry point of application code: ``App``, the ``@app.task`` decorator and ``Call``.

``App`` holds the Redis connection and the task registry. ``@app.task`` turns a function
into a ``Task`` that still runs when called directly and gains ``.delay()`` (Celery style);
``app.queue(name).enqueue(func, ...)`` gives the RQ style. Both build the same ``Call`` and
go through ``App.enqueue_many`` and the plan of ``enqueue`` (a lone plain call: the layout
that plan kept, ``short``). The async twins send the same plan with ``send.send_async``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from kubeq import defaults
from kubeq.checks import check_count, check_seconds
from kubeq.client import pools, short
from kubeq.client.enqueue import (
    ENQUEUE_BATCH,
    PlanSink,
    check_call,
    check_retry_overrides,
    created_flags,
    plan_enqueue,
)
from kubeq.client.flow import awith_flows, flows_of, with_flows
from kubeq.client.jobs import Job
from kubeq.client.queues import Queue
from kubeq.client.schedules import Schedules
from kubeq.client.send import EnqueueStream, send, send_async
from kubeq.client.tasks import Task, task_name, task_options
from kubeq.options import Call, TaskOptions
from kubeq.patterns import Batch, KeyOption
from kubeq.store import connections, urls
from kubeq.store.ids import new_job_id
from kubeq.store.keys import validate_queue_name
from kubeq.store.partitions import Partitioner
from kubeq.store.scripts import Scripts, run_pipeline
from kubeq.workflows import dependencies
from kubeq.workflows.dependencies import Edge

if TYPE_CHECKING:
    import redis
    from redis.asyncio import Redis as AsyncRedis

    from kubeq.client.enqueue import EnqueuePlan

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["App", "Call", "Task", "TaskOptions", "check_call", "check_retry_overrides", "task_name"]


class InlineRunner(Protocol):
    """What ``kubeq.testing.eager`` installs on an App: it runs a plan's jobs in the caller."""

    def run(self, plan: EnqueuePlan, calls: Sequence[Call] = ()) -> Sequence[Job]: ...

    async def arun(self, plan: EnqueuePlan) -> Sequence[Job]: ...


class App:
    """A kubeq application: a Redis connection, a key prefix and a registry of tasks."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        password: str | None = None,
        prefix: str = defaults.PREFIX,
        default_queue: str = defaults.QUEUE,
        wait_replicas: int = 0,
        wait_timeout: float = defaults.WAIT_TIMEOUT,
        partitions: Mapping[str, int] | None = None,
    ) -> None:
        """``password`` overrides KUBEQ_REDIS_PASSWORD (e.g. from a Secret); ``partitions``:
        queue name -> sub-queues its jobs spread over (``kubeq.store.partitions``);
        ``wait_replicas`` > 0: an enqueue returns once that many replicas have the jobs (WAIT)."""
        self.redis_url = urls.resolve_url(redis_url)
        self._password = password
        self.prefix = prefix
        self.default_queue = validate_queue_name(default_queue)
        self.wait_replicas = check_count("wait_replicas", wait_replicas, low=0, high=100)
        self.wait_timeout = check_seconds("wait_timeout", wait_timeout)
        self.partitioner = Partitioner(partitions)
        self.pools = pools.PoolCache(prefix)
        """The worker pools TaskQueues declare, read at enqueue (``kubeq.client.pools``)."""
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._redis: redis.Redis | None = None
        self._scripts: Scripts | None = None
        self._known_queues: set[str] = set()
        self._loop_clients: connections.LoopClients | None = None
        self.eager: InlineRunner | None = None
        """Set by ``kubeq.testing.eager(app)``: enqueue runs each job inline instead."""

    def __repr__(self) -> str:
        return f"<App {urls.redact(self.redis_url)} prefix={self.prefix}>"

    @property
    def redis(self) -> redis.Redis:
        """The sync client, created on first use (so importing a tasks module is free)."""
        if self._redis is None:
            extra = {"password": self._password} if self._password is not None else {}
            self._redis = connections.sync_client(self.redis_url, **extra)
        return self._redis

    @property
    def aredis(self) -> AsyncRedis:
        """The running event loop's asyncio client: one pool per loop (and per process), made
        on first use and closed when the loop shuts down (the end of ``asyncio.run``): calling
        ``asyncio.run`` again and again leaves no connection open. Call from a coroutine."""
        if self._loop_clients is None:
            extra = {"password": self._password} if self._password is not None else {}
            self._loop_clients = connections.LoopClients(self.redis_url, **extra)
        return self._loop_clients.get()

    async def aclose(self) -> None:
        """Close the running loop's asyncio client now (e.g. at the end of a FastAPI lifespan,
        whose loop goes on serving); the next awaited call opens a new one (else it closes
        when its loop shuts down)."""
        if self._loop_clients is not None:
            await self._loop_clients.aclose()

    @property
    def scripts(self) -> Scripts:
        if self._scripts is None:
            self._scripts = Scripts(self.redis)
        return self._scripts

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = self._scripts = None

    @overload
    def task(self, func: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: int = defaults.PRIORITY,
        timeout: float | None = None,
        result_ttl: int = defaults.RESULT_TTL,
        max_attempts: int = defaults.MAX_ATTEMPTS,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        backoff_min: float = defaults.BACKOFF_MIN,
        backoff_max: float = defaults.BACKOFF_MAX,
        max_deliveries: int = defaults.MAX_DELIVERIES,
        pool: str | None = None,
        worker_pool: str | None = None,
        pin_version: bool = False,
        rate_limit: str | None = None,
        concurrency_limit: int | None = None,
        limit_key: Callable[..., str] | None = None,
        fair_key: str | Callable[..., str] | None = None,
        expires: float | None = None,
        soft_timeout: float | None = None,
        on_success: Call | None = None,
        on_failure: Call | None = None,
        debounce: float | None = None,
        debounce_max: float | None = None,
        debounce_key: KeyOption = None,
        singleton: str | None = None,
        singleton_key: KeyOption = None,
        batch: Batch | None = None,
        tags: Sequence[str] = (),
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(  # type: ignore[misc]
        self,
        func: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        **settings: Any,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function as a task: ``@app.task`` or ``@app.task(queue="high")``.

        Execution control (docs/limits.md): ``rate_limit="10/s"`` (also /m, /h) holds across
        every worker; ``concurrency_limit=N`` runs at most N at once per key (the call's
        ``limit_key=``, or ``limit_key=`` here as a function of the arguments; none: per
        task); ``expires`` seconds after enqueue a job not started ends expired;
        ``soft_timeout`` raises SoftTimeLimitExceeded inside the task; ``fair_key`` (a
        value, or a function of the arguments) makes keys take turns among ready jobs of one
        priority (docs/fairness.md).

        Callbacks (docs/workflows.md): ``on_success=notify.s()`` is enqueued with the result
        as its first argument when a job of this task finishes; ``on_failure=alert.s()`` with
        the job's id and error when it fails for good.

        Flow patterns (docs/patterns.md): ``debounce=5`` runs a key's job 5 s after its last
        call, with the last arguments (``debounce_max`` bounds the wait); ``singleton=`` one
        of skip, replace, keep_latest, cancel_running per ``singleton_key``;
        ``batch=kubeq.Batch(max_size=500, max_wait=2.0)`` runs it with lists of items.

        ``tags=["billing"]``: labels its jobs carry unless a call gives its own, to find them
        by; ``pin_version=True`` runs its jobs on the enqueuer's version (docs/scaling.md)."""
        options = task_options(self.default_queue, **settings)

        def register(f: Callable[P, R]) -> Task[P, R]:
            t: Task[P, R] = Task(self, f, name or task_name(f), options)
            if t.name in self.tasks and self.tasks[t.name].func is not f:
                raise ValueError(f"two tasks are named {t.name!r}; give one a name=")
            self.tasks[t.name] = t
            return t

        return register(func) if func is not None else register

    @property
    def schedules(self) -> Schedules:
        """Schedules created at run time (``kubeq.client.schedules``; docs/schedules.md)."""
        return Schedules(self)

    def queue(self, name: str | None = None) -> Queue:
        """A handle on one queue (RQ style): enqueue, stats, pause, dead letters."""
        return Queue(self, name or self.default_queue)

    def signal(
        self,
        key: str,
        payload: Any = None,
        *,
        queue: str | None = None,
        mode: str = "all",
        ttl: float | None = None,
    ) -> int:
        """Wake the jobs of ``queue`` (default: the App's) waiting on ``key`` with
        ``payload``; returns how many woke (``Queue.signal``, docs/durable.md)."""
        return self.queue(queue).signal(key, payload, mode=mode, ttl=ttl)

    async def asignal(
        self,
        key: str,
        payload: Any = None,
        *,
        queue: str | None = None,
        mode: str = "all",
        ttl: float | None = None,
    ) -> int:
        """``signal`` for async code."""
        return await self.queue(queue).asignal(key, payload, mode=mode, ttl=ttl)

    def job(self, job_id: str, queue: str | None = None) -> Job:
        """A handle on an existing job, from its id."""
        return Job(self, validate_queue_name(queue or self.default_queue), job_id)

    def enqueue_many(self, calls: Iterable[Call], *, queue: str | None = None) -> list[Job]:
        """Enqueue many calls, to any queues (or all to ``queue``), in one Redis round trip.
        The jobs come back in the order of the calls; each handle's ``created`` says whether
        this call created its job or found a live job of that id (or, debounced or
        singleton, joined its key's job: docs/patterns.md)."""
        calls = list(calls)
        if len(calls) == 1 and queue is None:  # delay(): the short path when it applies
            one = short.enqueue_one(self, calls[0], self._known_queues)
            if one is not None:
                return [one]
        flows = flows_of(self, calls)
        if flows:
            pools.refuse_in_flows(calls, flows, self.defaults_for)
            return with_flows(self, calls, flows, queue)
        todo = [
            dependencies.distinct(c.set(job_id=c.job_id or new_job_id()), self.default_queue)
            if c.depends_on
            else c
            for c in calls
        ]
        table = None
        if self.eager is None:  # what the plan refuses is refused first, Redis or not
            table = self.pools.table(self.redis, lambda: self._plan(todo, queue))
        if self._streams(todo):
            return self._enqueue_streamed(todo, queue, table)
        plan = self._plan(todo, queue, table)
        if self.eager is not None:  # runs each job at once, its parents' ends permitting
            return list(self.eager.run(plan, todo))
        edges = [
            (plan.targets[i], dependencies.parents_of(c, self.default_queue))
            for i, c in enumerate(todo)
            if c.depends_on
        ]
        for child, parents in edges:  # before anything is sent
            dependencies.check(self.redis, self.prefix, child, parents)
        return self.send_deferred(plan, [(child, parents, False) for child, parents in edges])

    def send_deferred(
        self, plan: EnqueuePlan, edges: list[tuple[Edge, list[Edge], bool]]
    ) -> list[Job]:
        """Send a checked plan whose ``edges`` (child, parents, keeps their results) are
        then linked: each child's record first, so a worker redoes a link its caller could
        not finish (``dependencies``)."""
        if edges:
            run_pipeline(self.redis, dependencies.record_calls(self.prefix, edges))
        replies = send(self.redis, plan, self._known_queues, self.wait_replicas, self.wait_timeout)
        for child, parents, results in edges:
            dependencies.link(self.redis, self.prefix, child, parents, results)
        return self._jobs(plan, replies)

    async def aenqueue_many(self, calls: Iterable[Call], *, queue: str | None = None) -> list[Job]:
        """``enqueue_many`` for async code: the same plan, one round trip on the running loop."""
        calls = list(calls)
        flows = flows_of(self, calls)
        if flows:
            pools.refuse_in_flows(calls, flows, self.defaults_for)
            return await awith_flows(self, calls, flows, queue)
        if any(c.depends_on for c in calls):
            raise ValueError(
                "depends_on is not supported by aenqueue_many yet: enqueue jobs with "
                "dependencies through the sync app.enqueue_many (or queue.enqueue_call)"
            )
        table = None
        if self.eager is None:
            table = await self.pools.atable(self.aredis, lambda: self._plan(calls, queue))
        plan = self._plan(calls, queue, table)
        if self.eager is not None:
            return list(await self.eager.arun(plan))
        if self.wait_replicas and self._on_cluster():
            # WAIT on a cluster needs each master's connection pinned: the sync client does it
            replies = await asyncio.to_thread(
                send, self.redis, plan, self._known_queues, self.wait_replicas, self.wait_timeout
            )
            return self._jobs(plan, replies)
        replies = await send_async(
            self.aredis, plan, self._known_queues, self.wait_replicas, self.wait_timeout
        )
        return self._jobs(plan, replies)

    def _streams(self, calls: list[Call]) -> bool:
        """Whether a bulk enqueue is written while it is laid out: more than one batch, on
        one Redis (not a cluster), with nothing to wait for (replicas, parents, eager)."""
        if len(calls) <= ENQUEUE_BATCH or self.eager is not None or self.wait_replicas:
            return False
        return not any(c.depends_on for c in calls) and not self._on_cluster()

    def _enqueue_streamed(
        self, calls: list[Call], queue: str | None, table: pools.Table | None
    ) -> list[Job]:
        """A bulk enqueue whose batches are written to Redis as they are laid out, and whose
        job handles are made while Redis runs them (``send.EnqueueStream``)."""
        stream = EnqueueStream(self.redis, self.prefix, self._known_queues)
        try:
            plan = self._plan(calls, queue, table, sink=stream)
            jobs = self._jobs(plan)
            replies = stream.finish(plan)
        except BaseException:
            stream.abandon()
            raise
        for job, created in zip(jobs, created_flags(plan, replies), strict=True):
            job.created = created
        return jobs

    def _on_cluster(self) -> bool:
        return urls.parse_cluster_url(urls.resolve_url(self.redis_url)) is not None

    def _plan(
        self,
        calls: list[Call],
        queue: str | None,
        table: pools.Table | None = None,
        sink: PlanSink | None = None,
    ) -> EnqueuePlan:
        route: pools.Route | None = self.partitioner.route if self.partitioner.partitions else None
        if table is not None and pools.needs_route(table, calls, self.defaults_for):
            route = pools.router(table, route)  # worker pools: <queue>@<pool>
        return plan_enqueue(
            calls,
            prefix=self.prefix,
            defaults_for=self.defaults_for,
            queue=queue,
            route=route,
            sink=sink,
        )

    def _jobs(self, plan: EnqueuePlan, replies: list[Any] | None = None) -> list[Job]:
        """The handles of a plan's jobs, in the caller's order, each saying whether the
        call created its job when the replies of the plan's calls are given."""
        if replies is None:
            return [Job(self, q, i) for q, i in zip(plan.job_queues, plan.job_ids, strict=True)]
        if len(replies) == 1 and len(replies[0]) == 1:  # one call of one job (delay())
            return [Job(self, plan.job_queues[0], plan.job_ids[0], replies[0][0] == 1)]
        made = created_flags(plan, replies)
        return [
            Job(self, q, i, c) for q, i, c in zip(plan.job_queues, plan.job_ids, made, strict=True)
        ]

    def defaults_for(self, name: str) -> TaskOptions:
        """The options of a registered task, or the defaults for a task this app doesn't know."""
        registered = self.tasks.get(name)
        return registered.options if registered else _unregistered(self.default_queue)


@functools.lru_cache(maxsize=64)
def _unregistered(queue: str) -> TaskOptions:
    """The options of a task the app doesn't know: built once per queue (they are frozen),
    since a bulk enqueue asks for them once or twice per call."""
    return TaskOptions(queue=queue)
