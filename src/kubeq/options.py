"""What a task and a call may set: ``TaskOptions`` (per task) and ``Call`` (one job to enqueue).

Plain frozen dataclasses with no I/O, shared by the client (``app``, ``queues``), the enqueue
plan (``enqueue``) and the worker, which applies a call's overrides from the payload. Every
default comes from ``defaults``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from kubeq import defaults
from kubeq.checks import (
    MAX_COUNT,
    MAX_TTL,
    check_count,
    check_fair_key,
    check_limit_key,
    check_priority,
    check_seconds,
    check_timeout,
    check_worker_pool,
)
from kubeq.patterns import Batch, KeyOption, check_options
from kubeq.retry import RetryPolicy
from kubeq.tags import check_tags

RETRY_OVERRIDES = ("max_attempts", "backoff_min", "backoff_max")
"""Per-call options that change the task's retry policy (carried in the payload)."""
WORKER_OVERRIDES = ("timeout", "soft_timeout", "chord_of", *RETRY_OVERRIDES)
"""Per-call options the worker applies, carried in the payload's ``options``."""


_RATE = re.compile(r"\s*(\d+)\s*/\s*([smh])\s*")


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` starts per ``period_ms``, fleet-wide (``"10/s"``, ``"100/m"``)."""

    count: int
    period_ms: int
    burst: int = defaults.RATE_BURST

    @classmethod
    def parse(cls, value: object, where: str = "rate_limit") -> RateLimit:
        """``"N/s"``, ``"N/m"`` or ``"N/h"``, or ValueError naming the field and the form."""
        match = _RATE.fullmatch(value) if isinstance(value, str) else None
        if match is None or not 1 <= int(match.group(1)) <= MAX_COUNT:
            raise ValueError(
                f"{where} must look like '10/s', '100/m' or '1000/h' (a whole number from 1 to "
                f"{MAX_COUNT}, then /s, /m or /h), got {value!r}"
            )
        count, period_ms = int(match.group(1)), defaults.RATE_UNITS[match.group(2)] * 1000
        burst = max(defaults.RATE_BURST, math.ceil(count * defaults.RATE_JITTER_MS / period_ms))
        return cls(count, period_ms, min(burst, count))

    @property
    def per_second(self) -> float:
        return self.count * 1000 / self.period_ms

    def __str__(self) -> str:
        unit = {v * 1000: k for k, v in defaults.RATE_UNITS.items()}[self.period_ms]
        return f"{self.count}/{unit}"


@dataclass(frozen=True)
class TaskOptions:
    """Per-task defaults, set with ``@app.task(...)`` and overridable per call."""

    queue: str = defaults.QUEUE
    priority: int = defaults.PRIORITY
    """0 (lowest) to 9 (highest); higher runs first while jobs wait in Redis."""
    timeout: float | None = None
    """Seconds one execution may take before it counts as failed (None: no limit)."""
    result_ttl: int = defaults.RESULT_TTL
    """Seconds the result stays readable after the job finishes."""
    max_deliveries: int = defaults.MAX_DELIVERIES
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pool: str | None = None
    """Where a sync task runs: None follows the worker's --pool; "process" sends a
    CPU-bound task to the worker's process pool even when the worker defaults to threads."""
    worker_pool: str | None = None
    """The TaskQueue worker pool (``spec.pools[].name``) whose pods run this task's jobs: they
    are enqueued to ``<queue>@<pool>`` (kubeq.client.pools; docs/scaling.md, Worker pools)."""
    pin_version: bool = False
    """Run each job on the worker version that enqueued it (``KUBEQ_VERSION`` of the
    enqueuing process): its job goes to ``<queue>~<version>`` (docs/scaling.md, Pinning)."""
    rate_limit: RateLimit | None = None
    """Starts of this task allowed per period across every worker (docs/limits.md)."""
    concurrency_limit: int | None = None
    """Jobs of this task (or of one ``limit_key``) allowed to run at once, fleet-wide."""
    limit_key: Callable[..., str] | None = None
    """Computes a call's concurrency key from its arguments at enqueue."""
    expires: float | None = None
    """Seconds after enqueue past which a job that has not started ends ``expired``."""
    soft_timeout: float | None = None
    """Seconds after which ``SoftTimeLimitExceeded`` is raised inside the task."""
    on_success: Call | None = None
    """Enqueued when a job of this task finishes, with its result as first argument."""
    on_failure: Call | None = None
    """Enqueued when a job of this task fails for good, with its id and error first."""
    fair_key: str | Callable[..., str] | None = None
    """The fairness key of the task's jobs (docs/fairness.md): a value, or a function of the
    arguments computed at enqueue. Among ready jobs of one priority, keys take turns."""
    debounce: float | None = None
    """Seconds of quiet before a job of a key runs: a newer call joins the waiting job
    (docs/patterns.md); ``debounce_max`` bounds the wait from its first call."""
    debounce_max: float | None = None
    debounce_key: KeyOption = None
    singleton: str | None = None
    """One of ``patterns.SINGLETON_MODES``: what a new call does while a job of its key
    waits or runs (docs/patterns.md)."""
    singleton_key: KeyOption = None
    batch: Batch | None = None
    """Run with lists of items formed in Redis (``kubeq.Batch``; docs/patterns.md)."""
    tags: tuple[str, ...] = ()
    """Tags every job of the task carries unless its call gives its own (``kubeq.tags``)."""

    def __post_init__(self) -> None:
        """Refuse at definition what every enqueue or every run would refuse later."""
        check_options(
            self.debounce, self.debounce_max, self.debounce_key, self.singleton, self.singleton_key
        )
        if self.batch is not None and not isinstance(self.batch, Batch):
            raise ValueError(
                f"batch must be a kubeq.Batch(max_size=, max_wait=), got {self.batch!r}"
            )
        if self.batch is not None and (self.debounce is not None or self.singleton is not None):
            raise ValueError("a batch task cannot also be debounced or a singleton")
        if self.singleton in ("keep_latest", "cancel_running") and self.concurrency_limit:
            raise ValueError(
                f"singleton={self.singleton!r} runs one job of a key at a time on its own: "
                "drop concurrency_limit"
            )
        check_priority(self.priority)
        check_timeout(self.timeout)
        check_timeout(self.soft_timeout, "soft_timeout")
        if self.expires is not None:
            check_seconds("expires", self.expires)
        if self.concurrency_limit is not None:
            check_count("concurrency_limit", self.concurrency_limit)
        if self.limit_key is not None and self.concurrency_limit is None:
            raise ValueError("limit_key needs concurrency_limit=N (the jobs per key at once)")
        if self.limit_key is not None and not callable(self.limit_key):
            raise ValueError(
                f"limit_key must be a function of the task's arguments returning the key "
                f"(e.g. lambda url: domain(url)), got {self.limit_key!r}"
            )
        if self.fair_key is not None and not callable(self.fair_key):
            check_fair_key(self.fair_key)
        check_count("result_ttl", self.result_ttl, high=MAX_TTL)
        check_count("max_deliveries", self.max_deliveries)
        object.__setattr__(self, "tags", check_tags(self.tags))
        if self.pool is not None and self.pool not in defaults.POOLS:
            raise ValueError(f"pool must be one of {', '.join(defaults.POOLS)}, got {self.pool!r}")
        check_worker_pool(self.worker_pool)


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
    limit_key: str | None = None
    """The concurrency-limit key of this call (the task's ``concurrency_limit`` applies to it)."""
    rate_limit: RateLimit | None = None
    """The task's rate limit, carried by ``Task.s()`` so it holds whichever App enqueues."""
    concurrency_limit: int | None = None
    """The task's concurrency limit, carried like ``rate_limit``."""
    expires: float | datetime | None = None
    """Seconds after enqueue, or an aware datetime, past which the job, not started, expires."""
    soft_timeout: float | None = None
    fair_key: str | None = None
    """The fairness key of this call: among ready jobs of one priority, keys take turns in
    proportion to their weights (docs/fairness.md)."""
    worker_pool: str | None = None
    """The worker pool that runs this job (overrides the task's ``worker_pool``)."""
    pin_version: bool | None = None
    """Run this job on the worker version that enqueues it (None: the task's ``pin_version``;
    False: not pinned even if the task is)."""
    version: str | None = None
    """Run this job on this worker version (``KUBEQ_VERSION`` of its workers), pinned."""
    partition_key: str | None = None
    """On a partitioned queue: jobs with the same key go to the same partition, in order."""
    on_success: Call | None = None
    """Enqueued when this job finishes, with its result as first argument (docs/workflows.md)."""
    on_failure: Call | None = None
    """Enqueued when this job fails for good (dead-lettered), with its id and error first."""
    immutable: bool = False
    """As a callback: receive only its own arguments, not the parent's result (``.si()``)."""
    depends_on: tuple[Any, ...] | list[Any] | None = None
    """Jobs (``Job`` handles, or ids on the App's default queue) that must end first: the job
    waits ``deferred`` until all have finished (docs/workflows.md)."""
    allow_failure: bool = False
    """With ``depends_on``: run even when a parent failed, was cancelled, aborted or expired
    (else the job is cancelled with that reason)."""
    chord_of: list[list[str]] | None = None
    """A chord's callback: the (queue, id) of its members, whose results the worker passes
    as the first argument, in order (set by ``kubeq.chord``)."""
    debounce: float | None = None
    """Seconds of quiet before the job of this call's debounce key runs (docs/patterns.md)."""
    debounce_max: float | None = None
    debounce_key: str | None = None
    singleton: str | None = None
    """A singleton mode for this call (``patterns.SINGLETON_MODES``)."""
    singleton_key: str | None = None
    batch: Batch | None = None
    """The task's batch options, carried like ``rate_limit`` (the call is one item)."""
    tags: tuple[str, ...] | list[str] | None = None
    """Labels to find the job by (``kubeq jobs --tag``, ``Queue.find``); None: the task's."""
    app: Any = field(default=None, compare=False, repr=False)
    """The App whose ``Task.s()`` made this call: a chain's ``.delay()`` enqueues through it."""

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
        return {n: getattr(self, n) for n in WORKER_OVERRIDES if getattr(self, n) is not None}

    def retry_overrides(self) -> dict[str, Any]:
        """The per-call changes to the task's retry policy."""
        return {n: getattr(self, n) for n in RETRY_OVERRIDES if getattr(self, n) is not None}


PLAIN = "_kubeq_plain"
"""The ``__dict__`` entry (not a field) of a Call made by ``CallTemplate.make``: its template."""


class CallTemplate:
    """The calls of one task that set nothing but their arguments, made without the frozen
    dataclass's ``__init__``.

    ``Task.s()`` builds a Call per job, and the dataclass ``__init__`` sets 26 fields through
    ``object.__setattr__``: the largest cost of a bulk enqueue's client side. A template checks
    its fields once, through ``Call``'s own constructor, and then copies them into each new
    call. A call it makes carries the template under ``PLAIN``, so the enqueue plan checks and
    lays out the options once per template and enqueue instead of once per call. ``Call.set()``
    (``dataclasses.replace``) builds an ordinary Call, without the marker: a changed call is
    always checked in full.
    """

    __slots__ = ("fields", "planned")

    def __init__(self, call: Call) -> None:
        if call.args or call.kwargs or call.job_id is not None or call.depends_on:
            raise ValueError("a call template holds options only: no arguments, id or parents")
        self.fields = dict(call.__dict__)
        self.fields[PLAIN] = self
        self.planned: tuple[Any, ...] | None = None
        """What the enqueue plan made of these options last, with what it depended on (the
        task's options as registered, the forced queue, ``once``): one ``delay()`` after
        another reuses it instead of checking the options again (``enqueue.plan_enqueue``)."""

    def make(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        """A Call of these arguments with the template's options (``kwargs`` is kept, not
        copied: pass a dict of your own)."""
        call = object.__new__(Call)
        fields = call.__dict__
        fields.update(self.fields)
        fields["args"] = args
        fields["kwargs"] = kwargs
        return call


def plain_template(call: Call) -> CallTemplate | None:
    """The template a call was made from, when nothing was changed since (see ``PLAIN``)."""
    template: CallTemplate | None = call.__dict__.get(PLAIN)
    return template


def apply_retry_overrides(base: RetryPolicy, options: dict[str, Any]) -> RetryPolicy:
    """The task's retry policy with a payload's per-call overrides applied (the worker side
    of ``Call.retry_overrides``)."""
    changes = {n: options[n] for n in RETRY_OVERRIDES if n in options}
    return replace(base, **changes) if changes else base


def key_from_args(
    task: str, func: Callable[..., str], args: Any, kwargs: Any, what: str = "limit_key"
) -> str:
    """A task's ``limit_key`` (or ``fair_key``) function applied to one call's arguments,
    checked."""
    try:
        key = func(*args, **kwargs)
    except Exception as exc:
        raise ValueError(
            f"task {task!r}: its {what} function failed on these arguments: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    check = check_fair_key if what == "fair_key" else check_limit_key
    return check(key, f"task {task!r}: the key its {what} function returned")


def fair_key_of(call: Call, opts: TaskOptions) -> str | None:
    """The fairness key of a call: its own, else the task's value or function of the
    arguments; None for none."""
    if call.fair_key is not None:
        return call.fair_key
    if opts.fair_key is None:
        return None
    if callable(opts.fair_key):
        return key_from_args(call.task, opts.fair_key, call.args, call.kwargs, "fair_key")
    return opts.fair_key


def limit_slot(call: Call, opts: TaskOptions) -> tuple[str, int] | None:
    """The concurrency-limit slot of a call: its key (``k:<limit key>``, or ``t:<task>`` for a
    task-wide limit) and how many jobs of that key may run at once; None when no concurrency
    limit applies. The call's own options win over the task's ``opts``."""
    key = call.limit_key
    if key is None and opts.limit_key is not None:
        key = key_from_args(call.task, opts.limit_key, call.args, call.kwargs)
    limit = call.concurrency_limit or opts.concurrency_limit
    if limit is None:
        if key is not None:
            raise ValueError(
                f"task {call.task!r}: limit_key={key!r} needs the task to declare "
                "concurrency_limit=N (@app.task(concurrency_limit=2))"
            )
        return None
    return (f"k:{key}" if key is not None else f"t:{call.task}", limit)
