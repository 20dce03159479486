"""``Task``: a function registered with ``@app.task``, and how a task is named.

Calling a task runs it here; ``.s()`` makes a ``Call`` of it carrying the task's enqueue-side
defaults, and ``.delay()`` / ``.apply_async()`` (and their awaited twins) enqueue that call
through the App that registered it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from kubeq import defaults
from kubeq.client.jobs import Job
from kubeq.options import Call, CallTemplate, RateLimit, TaskOptions, key_from_args
from kubeq.patterns import Batch, KeyOption, resolve_key
from kubeq.retry import RetryPolicy
from kubeq.store.keys import validate_queue_name

P = ParamSpec("P")
R = TypeVar("R")


class Enqueuer(Protocol):
    """What a Task needs of its App: the one enqueue path, sync and awaited."""

    def enqueue_many(self, calls: Iterable[Call], *, queue: str | None = None) -> list[Job]: ...

    async def aenqueue_many(
        self, calls: Iterable[Call], *, queue: str | None = None
    ) -> list[Job]: ...


def task_name(func: Callable[..., Any] | Task[Any, Any] | str) -> str:
    """The registered name of a task, a function (``module.name``) or a name given as str."""
    if isinstance(func, str):
        return func
    if isinstance(func, Task):
        return func.name
    return f"{func.__module__}.{func.__qualname__}"


class Task(Generic[P, R]):
    """A registered function. Calling it runs it here; ``.delay()`` enqueues it."""

    def __init__(
        self, app: Enqueuer, func: Callable[P, R], name: str, options: TaskOptions
    ) -> None:
        self.app = app
        self.func = func
        self.name = name
        self.options = options
        self._template: tuple[TaskOptions | None, CallTemplate | None] = (None, None)
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
        if (
            o.limit_key is None
            and not callable(o.fair_key)
            and o.debounce is None
            and o.singleton is None
        ):
            # nothing computed per call: copy the template (options.py)
            made, template = self._template
            if made is not o or template is None:
                template = self._make_template(o)
            return template.make(args, dict(kwargs))
        key = None if o.limit_key is None else key_from_args(self.name, o.limit_key, args, kwargs)
        fair = None
        if callable(o.fair_key):
            fair = key_from_args(self.name, o.fair_key, args, kwargs, "fair_key")
        call = self._call(o, args, dict(kwargs), key, fair)
        if o.debounce is not None:
            dkey = resolve_key(self.name, "debounce_key", o.debounce_key, args, kwargs)
            return call.set(debounce=o.debounce, debounce_max=o.debounce_max, debounce_key=dkey)
        if o.singleton is not None:
            skey = resolve_key(self.name, "singleton_key", o.singleton_key, args, kwargs)
            return call.set(singleton=o.singleton, singleton_key=skey)
        return call

    def _call(
        self,
        o: TaskOptions,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: str | None,
        fair: str | None = None,
    ) -> Call:
        return Call(
            self.name,
            args,
            kwargs,
            queue=o.queue,
            priority=o.priority,
            result_ttl=o.result_ttl,
            max_deliveries=o.max_deliveries,
            rate_limit=o.rate_limit,
            concurrency_limit=o.concurrency_limit,
            limit_key=key,
            fair_key=fair if fair is not None or callable(o.fair_key) else o.fair_key,
            expires=o.expires,
            on_success=o.on_success,
            on_failure=o.on_failure,
            batch=o.batch,
            pin_version=o.pin_version or None,
            app=self.app,
        )

    def _make_template(self, o: TaskOptions) -> CallTemplate:
        template = CallTemplate(self._call(o, (), {}, None))
        self._template = (o, template)
        return template

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Call:
        """An immutable signature: as a callback (or a chain's link) it receives only these
        arguments, not the parent's result."""
        return self.s(*args, **kwargs).set(immutable=True)

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
        result_ttl, max_attempts, backoff_min, backoff_max, max_deliveries, limit_key,
        fair_key, expires, soft_timeout, on_success, on_failure, debounce, debounce_max,
        debounce_key, singleton, singleton_key: docs/patterns.md)."""
        call = self.s(*args, **(kwargs or {}))
        return self.app.enqueue_many([call.set(**options)])[0]

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """``delay`` for async code: the same options and checks, sent on the running loop."""
        return (await self.app.aenqueue_many([self.s(*args, **kwargs)]))[0]

    async def aapply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """``apply_async`` for async code (the same per-call options)."""
        call = self.s(*args, **(kwargs or {}))
        return (await self.app.aenqueue_many([call.set(**options)]))[0]


def task_options(
    default_queue: str,
    *,
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
) -> TaskOptions:
    """The options ``@app.task(...)`` registers a task with, from its keyword arguments (the
    overloads of ``App.task`` list them with their types); ``TaskOptions`` checks each."""
    return TaskOptions(
        queue=validate_queue_name(queue or default_queue),
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
        worker_pool=worker_pool,
        pin_version=pin_version,
        rate_limit=None if rate_limit is None else RateLimit.parse(rate_limit),
        concurrency_limit=concurrency_limit,
        limit_key=limit_key,
        fair_key=fair_key,
        expires=expires,
        soft_timeout=soft_timeout,
        on_success=on_success,
        on_failure=on_failure,
        debounce=debounce,
        debounce_max=debounce_max,
        debounce_key=debounce_key,
        singleton=singleton,
        singleton_key=singleton_key,
        batch=batch,
        tags=tags,  # type: ignore[arg-type]  # TaskOptions checks it into a tuple
    )
