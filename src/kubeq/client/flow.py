"""Enqueueing the calls of debounced and singleton tasks and the items of batch tasks
(docs/patterns.md): each call is checked, encoded and laid out by the one enqueue plan, then
sent as one ``flow.lua`` call that decides, on the queue's slot, whether it joins the key's
job or writes its own; batch items go in bulk to ``batch.lua`` (``batchsend``). The handle
each call gets names the job that will run for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from kubeq.client.batchsend import Planned, plan_items
from kubeq.client.enqueue import laid_out, plan_enqueue
from kubeq.client.jobs import Job
from kubeq.options import Call, TaskOptions, limit_slot
from kubeq.patterns import Flow, batch_flow, flow_of
from kubeq.store.backend import Backend
from kubeq.store.jobfields import text
from kubeq.store.keys import queues_key
from kubeq.store.resend import aresent
from kubeq.store.scripts import LUA, ScriptCall, run_pipeline_async
from kubeq.store.stream import Stream

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


def checked(call: Call, flow: Flow, opts: TaskOptions, partitioned: bool) -> Call:
    """``call`` checked for its flow, as the enqueue plan lays it out: without its flow
    options and, on a partitioned queue, routed by its key unless it names a partition key
    of its own (``_keyed`` refuses that). A call with nothing to change is kept as it is, so
    the plan's fast path for a task's plain calls (``Task.s()``) holds for batch items."""
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
    bare = plain(call) if _has_flow_options(call) else call  # its batch is not read
    if partitioned and bare.partition_key is None:
        bare = bare.set(partition_key=flow.key)
    return bare


def _has_flow_options(call: Call) -> bool:
    """Whether the call sets a debounce or singleton option (the plan reads none of them;
    a plain call made by ``Task.s()`` of a batch task keeps its ``batch``)."""
    return not (
        call.debounce is None
        and call.singleton is None
        and call.debounce_max is None
        and call.debounce_key is None
        and call.singleton_key is None
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
    """(queue, the flow.lua call) of one debounced or singleton call, checked and encoded as
    any enqueue is. Every call of a key goes to one partition of a partitioned queue (its
    key routes it). Batch items go through ``batchsend.plan_items``."""
    bare = checked(call, flow, opts, route is not None)
    if route is not None:
        route = _keyed(route, flow, f"task {call.task!r} with {flow.mode}")
    plan = plan_enqueue([bare], prefix=prefix, defaults_for=defaults_for, queue=queue, route=route)
    (_, keys, args) = plan.calls[0]
    job = laid_out(args)[0]
    fields = [args[0], flow.mode, flow.key, flow.window_ms, flow.max_ms, args[2], *job]
    return plan.job_queues[0], (LUA["flow"], keys, fields)


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


def _jobs(app: Backend, planned: Sequence[Planned], replies: Sequence[Any]) -> dict[int, Job]:
    """The handle of each call, by its position, from the replies of the planned calls (a
    flow.lua call answers one {created, id}, a batch.lua call one per item)."""
    jobs = {}
    for (name, (script, _, _), positions), reply in zip(planned, replies, strict=True):
        pairs = [reply] if script is LUA["flow"] else reply
        for at, (created, job_id) in zip(positions, pairs, strict=True):
            if created == -1:
                raise ValueError(f"{script.name} refused the control fields of job {text(job_id)}")
            jobs[at] = Job(app, name, text(job_id) or "", created == 1)
    return jobs


def send_flows(app: Backend, planned: Sequence[Planned]) -> dict[int, Job]:
    """Send the planned calls in one round trip (each runs on its own, in order); the
    handles by position. They are written as a bulk enqueue's are (``Stream``): a connection
    lost before the replies sends every call again, which flow.lua and batch.lua recognise
    by the calls' send tokens."""
    app.redis.sadd(queues_key(app.prefix), *{name for name, _, _ in planned})
    stream = Stream(app.redis)
    try:
        for _, call, _ in planned:
            stream.script(call)
        replies = stream.finish()
    except BaseException:
        stream.abandon()
        raise
    return _jobs(app, planned, replies)


async def asend_flows(app: Backend, planned: Sequence[Planned]) -> dict[int, Job]:
    """``send_flows`` on the running loop's client."""
    # Any: redis-py before 8.0 types a reply as "T | Awaitable[T]", later ones as Awaitable[T]
    added: Any = app.aredis.sadd(queues_key(app.prefix), *{name for name, _, _ in planned})
    await added
    calls = [c for _, c, _ in planned]
    replies = await aresent(lambda: run_pipeline_async(app.aredis, calls), "enqueue")
    return _jobs(app, planned, replies)


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
) -> list[Planned]:
    """Every flow call planned: a flow.lua call each for debounced and singleton calls, the
    batch items in bulk (``batchsend``)."""
    route = app.partitioner.route if app.partitioner.partitions else None
    planned: list[Planned] = []
    items = []
    for i, f in flows.items():
        if f.mode == "batch":
            items.append(i)
            continue
        opts = app.defaults_for(calls[i].task)
        name, script_call = plan_flow(
            calls[i],
            f,
            opts,
            prefix=app.prefix,
            defaults_for=app.defaults_for,
            queue=queue,
            route=route,
        )
        planned.append((name, script_call, [i]))
    if not items:
        return planned
    bares = [
        checked(calls[i], flows[i], app.defaults_for(calls[i].task), route is not None)
        for i in items
    ]
    item_route = None
    if route is not None:
        by_call = {
            id(b): _keyed(route, flows[i], f"task {calls[i].task!r} with batch")
            for b, i in zip(bares, items, strict=True)
        }

        def item_route(name: str, call: Call, options: TaskOptions) -> str:
            return by_call[id(call)](name, call, options)

    planned += plan_items(
        bares,
        [flows[i] for i in items],
        items,
        prefix=app.prefix,
        defaults_for=app.defaults_for,
        queue=queue,
        route=item_route,
    )
    return planned


def with_flows(
    app: FlowApp, calls: Sequence[Call], flows: dict[int, Flow], queue: str | None
) -> list[Job]:
    """Every flow call through flow.lua or batch.lua (all checked before any is sent), the
    rest as usual; the handles in the calls' order."""
    planned = _planned(app, calls, flows, queue)
    rest = [c for i, c in enumerate(calls) if i not in flows]
    got = send_flows(app, planned)
    more = iter(app.enqueue_many(rest, queue=queue) if rest else [])
    return [got[i] if i in flows else next(more) for i in range(len(calls))]


async def awith_flows(
    app: FlowApp, calls: Sequence[Call], flows: dict[int, Flow], queue: str | None
) -> list[Job]:
    """``with_flows`` on the running loop's client."""
    planned = _planned(app, calls, flows, queue)
    rest = [c for i, c in enumerate(calls) if i not in flows]
    got = await asend_flows(app, planned)
    more = iter(await app.aenqueue_many(rest, queue=queue) if rest else [])
    return [got[i] if i in flows else next(more) for i in range(len(calls))]
