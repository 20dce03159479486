"""The one enqueue path: a pure plan from calls to script arguments, then a sender.

Every way to enqueue (``task.delay``, ``apply_async``, ``queue.enqueue``, ``enqueue_many``,
the CLI, the operator's cron schedules) builds ``Call`` objects and goes through
``plan_enqueue``: it validates each call (naming the bad field), applies the task's defaults,
encodes the JSON payload and lays out one ``enqueue.lua`` call per queue. The plan touches no
network, so it is unit-tested on its own, and the same plan is sent by ``send`` (a sync
redis-py client) or ``send_async`` (an asyncio one): a thousand jobs over three queues are one
round trip either way.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from . import defaults, rediscluster, serialization, tracing
from .callbacks import KINDS, encode_callback
from .errors import NotReplicated
from .keys import QueueKeys, queues_key, validate_job_id, validate_queue_name
from .options import (
    MAX_TTL,
    Call,
    TaskOptions,
    check_count,
    check_expires,
    check_limit_key,
    check_priority,
    check_seconds,
    check_timeout,
    expires_spec,
    key_from_args,
)
from .retry import RetryPolicy
from .scripts import LUA, ScriptCall, run_pipeline, run_pipeline_async

_sequence = itertools.count()

ENQUEUE_FIELDS_PER_JOB = 7
"""enqueue.lua's stride: id, payload, priority, due, max_deliveries, result_ttl, control."""


def new_job_id() -> str:
    """A unique id that sorts by creation time within this process.

    Jobs of one priority that became ready in the same millisecond share a ready-set score
    and Redis orders them by member, so time-ordered ids keep them first-in, first-out.
    """
    return f"{time.time_ns() // 1000:014x}{next(_sequence) & 0xFFFF:04x}{os.urandom(5).hex()}"


@dataclass(frozen=True)
class EnqueuePlan:
    """What one enqueue sends: the queues it touches and one script call per queue."""

    queues: tuple[str, ...]
    """Queue names in first-seen order (registered in the queue set before the jobs go in)."""
    calls: tuple[ScriptCall, ...]
    """One ``enqueue.lua`` call per queue."""
    targets: tuple[tuple[str, str], ...]
    """(queue, job id) of every call, in the caller's order."""
    prefix: str
    payloads: tuple[bytes, ...] = ()
    """The JSON payload of every call, in the caller's order (what a worker decodes)."""

    @property
    def job_ids(self) -> list[str]:
        return [job_id for _, job_id in self.targets]


def plan_enqueue(
    calls: Iterable[Call],
    *,
    prefix: str = defaults.PREFIX,
    defaults_for: Callable[[str], TaskOptions] | None = None,
    queue: str | None = None,
    route: Callable[[str, Call], str] | None = None,
    once: bool = False,
) -> EnqueuePlan:
    """Validate and lay out ``calls``. ``defaults_for(task_name)`` gives a task's options
    (an App's registry); ``queue`` forces every call onto one queue; ``route(queue, call)``
    names the partition of a partitioned queue that takes the call (``partitions``). ``once``
    makes a job whose id exists in any state (even ended) a duplicate: a callback's hand-off,
    redone after a crash, never runs it twice."""
    options_of = defaults_for or (lambda _name: TaskOptions())
    by_queue: dict[str, list[Any]] = {}
    targets: list[tuple[str, str]] = []
    payloads: list[bytes] = []
    for call in calls:
        check_call(call)
        opts = options_of(call.task)
        check_retry_overrides(call, opts.retry)
        name = validate_queue_name(queue or call.queue or opts.queue)
        if route is not None:  # a partitioned queue: the partition that takes this call
            name = route(name, call)
        job_id = call.job_id or new_job_id()
        args = by_queue.get(name)
        if args is None:
            args = by_queue[name] = [QueueKeys.of(name, prefix).base, 0]
        args[1] += 1
        payload = serialization.encode_call(
            call.task, call.args, call.kwargs, call.overrides(), tracing.inject()
        )
        payloads.append(payload)
        args += [
            job_id,
            payload,
            opts.priority if call.priority is None else call.priority,
            call.due(),
            call.max_deliveries or opts.max_deliveries,
            call.result_ttl or opts.result_ttl,
            control_fields(call, opts, once),
        ]
        targets.append((name, job_id))
    script_calls = tuple(
        (LUA["enqueue"], QueueKeys.of(name, prefix).script_keys, args)
        for name, args in by_queue.items()
    )
    return EnqueuePlan(tuple(by_queue), script_calls, tuple(targets), prefix, tuple(payloads))


def control_fields(call: Call, opts: TaskOptions, once: bool = False) -> bytes:
    """The job's execution-control fields for enqueue.lua (JSON; empty when it has none):
    the task's rate limit, its concurrency limit and this call's key, and the expiry.
    Limits travel with the job so the fetch script enforces them without a registry; a
    call made by ``Task.s()`` carries its task's limits, else the enqueuing App's registry
    gives them."""
    out: dict[str, Any] = {}
    rate = call.rate_limit or opts.rate_limit
    if rate is not None:
        out.update(rl_key=call.task, rl_n=rate.count, rl_ms=rate.period_ms, rl_b=rate.burst)
    key = call.limit_key
    if key is None and opts.limit_key is not None:
        key = key_from_args(call.task, opts.limit_key, call.args, call.kwargs)
    limit = call.concurrency_limit or opts.concurrency_limit
    if key is not None and limit is None:
        raise ValueError(
            f"task {call.task!r}: limit_key={key!r} needs the task to declare "
            "concurrency_limit=N (@app.task(concurrency_limit=2))"
        )
    if limit is not None:
        out.update(cl_key=f"k:{key}" if key is not None else f"t:{call.task}", cl_n=limit)
    expires = call.expires if call.expires is not None else opts.expires
    if expires is not None:
        out.update(expires=expires_spec(expires))
    for kind in KINDS:
        callback = getattr(call, kind) or getattr(opts, kind)
        if callback is not None:
            where = f"task {call.task!r}: {kind}"
            out[kind] = serialization.dumps(encode_callback(callback, where)).decode()
    if once:
        out["once"] = True
    if call.depends_on:
        out["deps"] = len(call.depends_on)
        if call.allow_failure:
            out["allow_failure"] = True
    return serialization.dumps(out) if out else b""


def send(
    client: Any,
    plan: EnqueuePlan,
    known_queues: set[str] | None = None,
    wait_replicas: int = 0,
    wait_timeout: float = defaults.WAIT_TIMEOUT,
) -> None:
    """Send a plan with a sync client. ``known_queues`` (kept by the caller) skips
    registering queues already registered by this process. ``wait_replicas`` > 0 returns
    only once that many replicas have the jobs (Redis WAIT), else raises NotReplicated."""
    if wait_replicas > 0 and rediscluster.is_cluster(client):
        new = _new_queues(plan, known_queues)
        if new:
            client.sadd(queues_key(plan.prefix), *new)
        acked = rediscluster.run_waited(
            client, list(plan.calls), wait_replicas, int(wait_timeout * 1000)
        )
        _check_replicated(acked, wait_replicas)
        return
    if wait_replicas > 0:
        # WAIT counts the writes of its own connection: the jobs and the WAIT share one (a
        # pooled client could send the WAIT on a connection whose writes replicated long ago)
        with client.client() as one:
            send(one, plan, known_queues)
            acked = one.wait(wait_replicas, int(wait_timeout * 1000))
        _check_replicated(acked, wait_replicas)
        return
    new = _new_queues(plan, known_queues)
    if new:
        client.sadd(queues_key(plan.prefix), *new)
    run_pipeline(client, list(plan.calls))
    if known_queues is not None:
        known_queues.update(new)


async def send_async(
    client: Any,
    plan: EnqueuePlan,
    known_queues: set[str] | None = None,
    wait_replicas: int = 0,
    wait_timeout: float = defaults.WAIT_TIMEOUT,
) -> None:
    """``send`` for a redis.asyncio client (concurrent calls on one loop are the common case,
    so a WAIT on a shared pool would often land on another call's connection). On Redis
    Cluster with ``wait_replicas``, ``App.aenqueue_many`` sends through ``send`` in a thread
    (redis-py's asyncio cluster client cannot pin one node's connection)."""
    if wait_replicas > 0 and rediscluster.is_cluster(client):
        raise ValueError(
            "wait_replicas on Redis Cluster: enqueue through kubeq.App (it sends these "
            "with the sync cluster client), or with send()"
        )
    if wait_replicas > 0:
        async with client.client() as one:
            await send_async(one, plan, known_queues)
            acked = await one.wait(wait_replicas, int(wait_timeout * 1000))
        _check_replicated(acked, wait_replicas)
        return
    new = _new_queues(plan, known_queues)
    if new:
        await client.sadd(queues_key(plan.prefix), *new)
    await run_pipeline_async(client, list(plan.calls))
    if known_queues is not None:
        known_queues.update(new)


def _check_replicated(acked: int, wanted: int) -> None:
    if int(acked) < wanted:
        raise NotReplicated(
            f"enqueued on the master, but only {acked} of {wanted} replicas confirmed it in "
            "time: the jobs are lost if the master fails before they replicate (check the "
            "replicas, or raise wait_timeout)"
        )


def _new_queues(plan: EnqueuePlan, known: set[str] | None) -> list[str]:
    return [q for q in plan.queues if known is None or q not in known]


# -- validation --------------------------------------------------------------------------------


def check_call(call: Call) -> None:
    """Validate the options of one call, naming the bad field."""
    if call.priority is not None:
        check_priority(call.priority)
    if call.job_id is not None:
        validate_job_id(call.job_id)
    if call.queue is not None:
        validate_queue_name(call.queue)
    check_timeout(call.timeout)
    for name in ("backoff_min", "backoff_max", "delay"):
        value = getattr(call, name)
        if value is not None:
            check_seconds(name, value, allow_zero=True)
    for name in ("max_attempts", "max_deliveries"):
        value = getattr(call, name)
        if value is not None:
            check_count(name, value)
    if call.result_ttl is not None:
        check_count("result_ttl", call.result_ttl, high=MAX_TTL)
    check_timeout(call.soft_timeout, "soft_timeout")
    check_expires(call.expires)
    if call.limit_key is not None:
        check_limit_key(call.limit_key)
    if call.partition_key is not None and (
        not isinstance(call.partition_key, str) or not 0 < len(call.partition_key) <= 1024
    ):
        raise ValueError(
            f"partition_key must be a non-empty string of at most 1024 characters, "
            f"got {call.partition_key!r}"
        )
    if call.concurrency_limit is not None:
        check_count("concurrency_limit", call.concurrency_limit)


def check_retry_overrides(call: Call, base: RetryPolicy) -> None:
    """Refuse per-call retry options that the worker would refuse (e.g. backoff_min above
    the task's backoff_max), here in the caller, naming the field."""
    changes = call.retry_overrides()
    if changes:
        try:
            replace(base, **changes)
        except ValueError as exc:
            raise ValueError(f"task {call.task!r}: {exc}") from None
