"""Enqueueing the calls of debounced and singleton tasks (docs/patterns.md) through
``flow.lua``: each call is checked, encoded and laid out by the one enqueue plan, then sent
as one ``flow.lua`` call that decides, on the queue's slot, whether it joins the key's job or
writes its own. The handle it returns names the job that will run for the call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from kubeq import serialization
from kubeq.client.enqueue import laid_out, plan_enqueue
from kubeq.client.jobs import Job
from kubeq.options import Call, TaskOptions, limit_slot
from kubeq.patterns import Flow, batch_flow, flow_of
from kubeq.store.backend import Backend
from kubeq.store.jobfields import text
from kubeq.store.keys import queues_key
from kubeq.store.scripts import LUA, ScriptCall, run_pipeline, run_pipeline_async

Route = Callable[[str, Call, TaskOptions], str]


def flow_for(call: Call, opts: TaskOptions) -> Flow | None:
    """The debounce or singleton decision of ``call`` (its options over its task's ``opts``),
    or None for an ordinary call (the common case costs a few attribute reads). An item of
    a batch task goes to its batch (mode ``batch``)."""
    batch = call.batch or opts.batch
    if batch is not None:
        return batch_flow(call.task, batch, call.args, call.kwargs)
    if (
        call.debounce is None
        and call.singleton is None
        and opts.debounce is None
        and opts.singleton is None
        and call.debounce_max is None
        and call.debounce_key is None
        and call.singleton_key is None
    ):
        return None
    return flow_of(
        call.task,
        call.args,
        call.kwargs,
        (call.debounce, call.debounce_max, call.debounce_key, call.singleton, call.singleton_key),
        (opts.debounce, opts.debounce_max, opts.debounce_key, opts.singleton, opts.singleton_key),
    )


def plain(call: Call) -> Call:
    """The call without its debounce or singleton options (eager mode runs it as it is)."""
    return call.set(
        debounce=None,
        debounce_max=None,
        debounce_key=None,
        singleton=None,
        singleton_key=None,
        batch=None,
    )


def plan_flow(
    call: Call,
    flow: Flow,
    opts: TaskOptions,
    *,
    prefix: str,
    defaults_for: Callable[[str], TaskOptions],
    queue: str | None,
    route: Route | None,
) -> tuple[str, ScriptCall]:
    """(queue, the flow.lua call) of one call, checked and encoded as any enqueue is. Every
    call of a key goes to one partition of a partitioned queue (its key routes it)."""
    what = f"task {call.task!r} with {flow.mode}"
    if call.job_id is not None:
        raise ValueError(f"{what}: job_id cannot be given (the key names the job)")
    if call.depends_on:
        raise ValueError(f"{what}: depends_on cannot be given")
    if flow.mode in ("debounce", "batch") and (call.delay or call.eta is not None):
        raise ValueError(f"{what}: delay and eta cannot be given (the window sets the start)")
    if flow.mode in ("keep_latest", "cancel_running") and (
        call.concurrency_limit or opts.concurrency_limit
    ):
        raise ValueError(f"{what}: concurrency_limit cannot be given (one runs at a time)")
    bare = plain(call)
    if bare.partition_key is None:
        bare = bare.set(partition_key=flow.key)
    if route is not None:
        route = _keyed(route, flow, what)
    plan = plan_enqueue([bare], prefix=prefix, defaults_for=defaults_for, queue=queue, route=route)
    (_, keys, args) = plan.calls[0]
    job = laid_out(args)[0]
    fields = [args[0], flow.mode, flow.key, flow.window_ms, flow.max_ms, args[2], *job]
    if flow.mode != "batch":
        return plan.job_queues[0], (LUA["flow"], keys, fields)
    if job[-1] and set(json.loads(job[-1])) != {"expires"}:
        raise ValueError(
            f"{what}: its items take no rate or concurrency limit or callbacks, only "
            "expires= (give those to the task that handles the batch's results)"
        )
    carrier = serialization.encode_call(call.task, [], {}, {"batch": 1})
    return plan.job_queues[0], (LUA["batch"], keys, [*fields, carrier])


def _keyed(route: Route, flow: Flow, what: str) -> Route:
    """``route`` for the calls of one key, refusing what would part them on a partitioned
    queue: a ``partition_key`` of its own, or a concurrency limit whose key is neither the
    flow's key nor task-wide. The limit's slots live in one partition, so the partitioner
    routes a limited call by its limit key; with those two refused, that partition is the
    one the flow key names for every call of the key, and flow.lua decides there."""

    def keyed(queue: str, call: Call, options: TaskOptions) -> str:
        part = route(queue, call, options)
        if part == queue:
            return part  # not partitioned: one queue holds the key and every slot
        if call.partition_key != flow.key:
            raise ValueError(
                f"{what}: partition_key cannot be given on the partitioned queue {queue!r} "
                f"(the {flow.mode} key routes every call of the key to one partition)"
            )
        own = flow.key[len(call.task) + 1 :]  # the key, without its "<task>:"
        slot = limit_slot(call, options)
        if slot is not None and slot[0] not in (f"t:{call.task}", f"k:{own}"):
            raise ValueError(
                f"{what}: on the partitioned queue {queue!r}, its limit_key "
                f"{slot[0][2:]!r} is not its {flow.mode} key {own!r}: the calls of the key "
                "would go to the partitions of their limit keys and not meet. Give it "
                "limit_key equal to the key, a task-wide concurrency_limit (no limit_key), "
                "or a queue without partitions"
            )
        return part

    return keyed


def _jobs(app: Backend, queues: Sequence[str], replies: Sequence[Any]) -> list[Job]:
    jobs = []
    for name, (created, job_id) in zip(queues, replies, strict=True):
        if created == -1:
            raise ValueError(f"flow.lua refused the control fields of job {text(job_id)}")
        jobs.append(Job(app, name, text(job_id) or "", created == 1))
    return jobs


def send_flows(app: Backend, planned: Sequence[tuple[str, ScriptCall]]) -> list[Job]:
    """Send the flow.lua calls in one pipeline (each runs on its own, in order); the handles."""
    names = [name for name, _ in planned]
    app.redis.sadd(queues_key(app.prefix), *set(names))
    return _jobs(app, names, run_pipeline(app.redis, [c for _, c in planned]))


async def asend_flows(app: Backend, planned: Sequence[tuple[str, ScriptCall]]) -> list[Job]:
    """``send_flows`` on the running loop's client."""
    names = [name for name, _ in planned]
    # Any: redis-py before 8.0 types a reply as "T | Awaitable[T]", later ones as Awaitable[T]
    added: Any = app.aredis.sadd(queues_key(app.prefix), *set(names))
    await added
    return _jobs(app, names, await run_pipeline_async(app.aredis, [c for _, c in planned]))


class FlowApp(Backend, Protocol):
    """What the flow path needs of an App."""

    eager: Any
    partitioner: Any

    def defaults_for(self, name: str) -> TaskOptions: ...

    def enqueue_many(self, calls: Iterable[Call], *, queue: str | None = None) -> list[Job]: ...

    async def aenqueue_many(
        self, calls: Iterable[Call], *, queue: str | None = None
    ) -> list[Job]: ...


def flows_of(app: FlowApp, calls: Sequence[Call]) -> dict[int, Flow]:
    """The debounced and singleton calls by their index (none in eager mode, which runs each
    call as it comes: docs/patterns.md)."""
    if app.eager is not None:
        return {}
    found = {}
    for i, c in enumerate(calls):
        f = flow_for(c, app.defaults_for(c.task))
        if f is not None:
            found[i] = f
    return found


def _planned(
    app: FlowApp, calls: Sequence[Call], flows: dict[int, Flow], queue: str | None
) -> list[tuple[str, ScriptCall]]:
    route = app.partitioner.route if app.partitioner.partitions else None
    return [
        plan_flow(
            calls[i],
            f,
            app.defaults_for(calls[i].task),
            prefix=app.prefix,
            defaults_for=app.defaults_for,
            queue=queue,
            route=route,
        )
        for i, f in flows.items()
    ]


def with_flows(
    app: FlowApp, calls: Sequence[Call], flows: dict[int, Flow], queue: str | None
) -> list[Job]:
    """Every flow call through flow.lua (all checked before any is sent), the rest as
    usual; the handles in the calls' order."""
    planned = _planned(app, calls, flows, queue)
    rest = [c for i, c in enumerate(calls) if i not in flows]
    got = iter(send_flows(app, planned))
    more = iter(app.enqueue_many(rest, queue=queue) if rest else [])
    return [next(got) if i in flows else next(more) for i in range(len(calls))]


async def awith_flows(
    app: FlowApp, calls: Sequence[Call], flows: dict[int, Flow], queue: str | None
) -> list[Job]:
    """``with_flows`` on the running loop's client."""
    planned = _planned(app, calls, flows, queue)
    rest = [c for i, c in enumerate(calls) if i not in flows]
    got = iter(await asend_flows(app, planned))
    more = iter(await app.aenqueue_many(rest, queue=queue) if rest else [])
    return [next(got) if i in flows else next(more) for i in range(len(calls))]
