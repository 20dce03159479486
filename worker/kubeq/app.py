"""The entry point of application code: ``App``, the ``@app.task`` decorator and ``Call``.

``App`` holds the Redis connection and the task registry. ``@app.task`` turns a function
into a ``Task`` that still runs when called directly and gains ``.delay()`` (Celery style);
``app.queue(name).enqueue(func, ...)`` gives the RQ style. Both build the same ``Call``
and go through ``Queue.enqueue_many``, so there is one enqueue path to test and optimise.
"""

from __future__ import annotations

import inspect
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from . import connections
from .keys import (
    DEFAULT_PREFIX,
    PRIORITY_DEFAULT,
    PRIORITY_MAX,
    PRIORITY_MIN,
    validate_job_id,
    validate_queue_name,
)
from .retry import RetryPolicy
from .scripts import Scripts

if TYPE_CHECKING:
    import redis

    from .jobs import Job
    from .queues import Queue

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_QUEUE = "default"
DEFAULT_RESULT_TTL = 86_400
"""Seconds a finished job and its result stay readable: one day, like Celery's default."""
DEFAULT_MAX_DELIVERIES = 5
"""Deliveries without an acknowledgement (the worker died each time) before a job is
declared poison and dead-lettered."""

POOLS = ("thread", "process", "async")


@dataclass(frozen=True)
class TaskOptions:
    """Per-task defaults, set with ``@app.task(...)`` and overridable per call."""

    queue: str = DEFAULT_QUEUE
    priority: int = PRIORITY_DEFAULT
    """0 (lowest) to 9 (highest); higher runs first while jobs wait in Redis."""
    timeout: float | None = None
    """Seconds one execution may take before it counts as failed (None: no limit)."""
    result_ttl: int = DEFAULT_RESULT_TTL
    """Seconds the result stays readable after the job finishes."""
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pool: str | None = None
    """Where a sync task runs: None follows the worker's --pool; "process" sends a
    CPU-bound task to the worker's process pool even when the worker defaults to threads."""


@dataclass(frozen=True)
class Call:
    """One job to enqueue: a task name, its arguments and the options of this one call."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    delay: float | None = None
    """Seconds from now before the job may run."""
    eta: datetime | float | None = None
    """When the job may run: an aware datetime or a Unix timestamp (exclusive with delay)."""
    job_id: str | None = None
    """Your id for de-duplication: enqueueing an id that is still live returns that job."""
    timeout: float | None = None
    result_ttl: int | None = None
    max_attempts: int | None = None
    backoff_min: float | None = None
    backoff_max: float | None = None
    max_deliveries: int | None = None

    def set(self, **options: Any) -> Call:
        """A copy with these options changed, e.g. ``add.s(1, 2).set(priority=9)``."""
        return replace(self, **options)

    def due(self) -> str:
        """When the job may run, for enqueue.lua: "0" now, "+<ms>" after a delay counted by
        the Redis server's clock (a skewed client clock cannot shift it), or "<ms>" since the
        epoch for an eta (an absolute time the caller chose)."""
        if self.delay is not None and self.eta is None:
            if self.delay < 0:
                raise ValueError(f"delay must be >= 0 seconds, got {self.delay}")
            return f"+{int(self.delay * 1000)}" if self.delay > 0 else "0"
        return str(self.run_at_ms())

    def run_at_ms(self) -> int:
        """When the job may run, in ms since the epoch (0 = now)."""
        if self.delay is not None and self.eta is not None:
            raise ValueError("give either delay or eta, not both")
        if self.delay is not None:
            if self.delay < 0:
                raise ValueError(f"delay must be >= 0 seconds, got {self.delay}")
            return int((time.time() + self.delay) * 1000) if self.delay > 0 else 0
        if self.eta is not None:
            if isinstance(self.eta, datetime):
                if self.eta.tzinfo is None:
                    raise ValueError("eta must be timezone-aware, e.g. datetime.now(UTC)")
                return int(self.eta.timestamp() * 1000)
            return int(float(self.eta) * 1000)
        return 0

    def overrides(self) -> dict[str, Any]:
        """The per-call options the worker applies, for the payload."""
        names = ("timeout", "max_attempts", "backoff_min", "backoff_max")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


def task_name(func: Callable[..., Any] | Task[Any, Any] | str) -> str:
    """The registered name of a task, a function (``module.name``) or a name given as str."""
    if isinstance(func, str):
        return func
    if isinstance(func, Task):
        return func.name
    return f"{func.__module__}.{func.__qualname__}"


class Task(Generic[P, R]):
    """A registered function. Calling it runs it here; ``.delay()`` enqueues it."""

    def __init__(self, app: App, func: Callable[P, R], name: str, options: TaskOptions) -> None:
        self.app = app
        self.func = func
        self.name = name
        self.options = options
        self.is_async = inspect.iscoroutinefunction(func)
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.options.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def s(self, *args: P.args, **kwargs: P.kwargs) -> Call:
        """A Call of this task with these arguments, for ``enqueue_many`` or ``.set()``.

        It carries the task's enqueue-side defaults, so they hold whichever App enqueues it.
        """
        o = self.options
        return Call(
            self.name,
            args,
            dict(kwargs),
            queue=o.queue,
            priority=o.priority,
            result_ttl=o.result_ttl,
            max_deliveries=o.max_deliveries,
        )

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Enqueue with the task's default options; returns the job handle."""
        return self.app.enqueue_many([self.s(*args, **kwargs)])[0]

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Enqueue with per-call options (queue, priority, delay, eta, job_id, timeout,
        result_ttl, max_attempts, backoff_min, backoff_max, max_deliveries)."""
        call = self.s(*args, **(kwargs or {}))
        return self.app.enqueue_many([call.set(**options)])[0]


class App:
    """A kubeq application: a Redis connection, a key prefix and a registry of tasks."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        password: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        default_queue: str = DEFAULT_QUEUE,
    ) -> None:
        """``password`` overrides KUBEQ_REDIS_PASSWORD (e.g. one read from a Secret)."""
        self.redis_url = connections.resolve_url(redis_url)
        self._password = password
        self.prefix = prefix
        self.default_queue = validate_queue_name(default_queue)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._redis: redis.Redis | None = None
        self._scripts: Scripts | None = None
        self._known_queues: set[str] = set()

    def __repr__(self) -> str:
        return f"<App {connections.redact(self.redis_url)} prefix={self.prefix}>"

    @property
    def redis(self) -> redis.Redis:
        """The sync client, created on first use (so importing a tasks module is free)."""
        if self._redis is None:
            extra = {"password": self._password} if self._password is not None else {}
            self._redis = connections.sync_client(self.redis_url, **extra)
        return self._redis

    @property
    def scripts(self) -> Scripts:
        if self._scripts is None:
            self._scripts = Scripts(self.redis)
        return self._scripts

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None
            self._scripts = None

    @overload
    def task(self, func: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: int = PRIORITY_DEFAULT,
        timeout: float | None = None,
        result_ttl: int = DEFAULT_RESULT_TTL,
        max_attempts: int = 3,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        backoff_min: float = 1.0,
        backoff_max: float = 300.0,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        pool: str | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(  # type: ignore[misc]
        self,
        func: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: int = PRIORITY_DEFAULT,
        timeout: float | None = None,
        result_ttl: int = DEFAULT_RESULT_TTL,
        max_attempts: int = 3,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        backoff_min: float = 1.0,
        backoff_max: float = 300.0,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        pool: str | None = None,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function as a task: ``@app.task`` or ``@app.task(queue="high")``."""
        _check_priority(priority)
        if pool is not None and pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        options = TaskOptions(
            queue=validate_queue_name(queue or self.default_queue),
            priority=priority,
            timeout=timeout,
            result_ttl=result_ttl,
            max_deliveries=max_deliveries,
            retry=RetryPolicy(
                max_attempts=max_attempts,
                retry_on=retry_on,
                backoff_min=backoff_min,
                backoff_max=backoff_max,
            ),
            pool=pool,
        )

        def register(f: Callable[P, R]) -> Task[P, R]:
            t: Task[P, R] = Task(self, f, name or task_name(f), options)
            if t.name in self.tasks and self.tasks[t.name].func is not f:
                raise ValueError(f"two tasks are named {t.name!r}; give one a name=")
            self.tasks[t.name] = t
            return t

        return register(func) if func is not None else register

    def queue(self, name: str | None = None) -> Queue:
        """A handle on one queue (RQ style): enqueue, stats, pause, dead letters."""
        from .queues import Queue

        return Queue(self, name or self.default_queue)

    def job(self, job_id: str, queue: str | None = None) -> Job:
        """A handle on an existing job, from its id."""
        from .jobs import Job

        return Job(self, validate_queue_name(queue or self.default_queue), job_id)

    def enqueue_many(self, calls: Iterable[Call]) -> list[Job]:
        """Enqueue many calls, to any queues, in one Redis round trip."""
        from .queues import Queue

        by_queue: dict[str, list[tuple[int, Call]]] = defaultdict(list)
        for index, call in enumerate(calls):
            by_queue[call.queue or self.defaults_for(call.task).queue].append((index, call))
        return Queue.enqueue_grouped(self, by_queue)

    def defaults_for(self, name: str) -> TaskOptions:
        """The options of a registered task, or the defaults for a task this app doesn't know."""
        registered = self.tasks.get(name)
        return registered.options if registered else TaskOptions(queue=self.default_queue)


def _check_priority(priority: int) -> None:
    if not isinstance(priority, int) or not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise ValueError(
            f"priority must be an integer from {PRIORITY_MIN} (lowest) to {PRIORITY_MAX} "
            f"(highest), got {priority!r}"
        )


def check_call(call: Call) -> None:
    """Validate the options of one call, naming the bad field."""
    if call.priority is not None:
        _check_priority(call.priority)
    if call.job_id is not None:
        validate_job_id(call.job_id)
    if call.queue is not None:
        validate_queue_name(call.queue)
    for name in ("timeout", "backoff_min", "backoff_max"):
        value = getattr(call, name)
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0 seconds, got {value}")
    for name in ("max_attempts", "max_deliveries"):
        value = getattr(call, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if call.result_ttl is not None and call.result_ttl < 1:
        raise ValueError(f"result_ttl must be >= 1 second, got {call.result_ttl}")
    if call.timeout is not None and call.timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {call.timeout}")


def check_retry_overrides(call: Call, base: RetryPolicy) -> None:
    """Refuse per-call retry options that the worker would refuse (e.g. backoff_min above
    the task's backoff_max), here in the caller, naming the field."""
    changes = {
        n: getattr(call, n)
        for n in ("max_attempts", "backoff_min", "backoff_max")
        if getattr(call, n) is not None
    }
    if changes:
        try:
            replace(base, **changes)
        except ValueError as exc:
            raise ValueError(f"task {call.task!r}: {exc}") from None
