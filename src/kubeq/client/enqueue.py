"""The one enqueue path: a pure plan from calls to script arguments, then a sender.

Every way to enqueue (``task.delay``, ``apply_async``, ``queue.enqueue``, ``enqueue_many``,
the CLI, the operator's cron schedules) builds ``Call`` objects and goes through
``plan_enqueue``: it validates each call (naming the bad field), applies the task's defaults,
encodes the JSON payload and lays out one ``enqueue.lua`` call per queue. The plan touches no
network, so it is unit-tested on its own; ``send.py`` sends it (a sync or an asyncio client,
or streamed while it is laid out): a thousand jobs over three queues are one round trip. A
lone plain call whose template it planned before reuses what it kept (``short.py``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, NamedTuple, Protocol, cast

from kubeq import defaults, serialization, tracing
from kubeq.checks import (
    MAX_TTL,
    check_count,
    check_expires,
    check_fair_key,
    check_limit_key,
    check_priority,
    check_seconds,
    check_timeout,
    check_worker_pool,
    expires_spec,
)
from kubeq.client import pinning
from kubeq.options import Call, CallTemplate, TaskOptions, fair_key_of, limit_slot, plain_template
from kubeq.retry import RetryPolicy
from kubeq.store.ids import PlanIds
from kubeq.store.keys import QueueKeys, validate_job_id, validate_queue_name
from kubeq.store.scripts import LUA, ScriptCall
from kubeq.tags import check_tags
from kubeq.workflows.callbacks import KINDS, encode_callback

ENQUEUE_HEADER = 3
"""enqueue.lua's leading fields: base, the number of groups, the call's send token."""
ENQUEUE_GROUP_FIELDS = 6
"""enqueue.lua's fields per group of jobs: count, priority, due, max_deliveries, result_ttl,
control."""
ENQUEUE_JOB_FIELDS = 2
"""enqueue.lua's fields per job within a group: id, payload."""
ENQUEUE_BATCH = 2000
"""Jobs per enqueue.lua call at most: a bulk enqueue is split so that no one script holds
Redis for long (2,000 jobs take Redis a few ms), pipelined in the same round trip."""
RESEND_WINDOW = 300
"""Seconds an enqueue.lua call's receipt is kept (the script's own RESEND_WINDOW): a resend of
a call whose reply was lost gets the first reply back within that time. Well above the
longest a client takes to resend (its 15 s socket timeout, then its reconnection attempts)."""


class EnqueuePlan(NamedTuple):
    """What one enqueue sends: the queues it touches and its script calls (a NamedTuple: a
    one-call enqueue builds one, and it is cheaper to build than a frozen dataclass)."""

    queues: tuple[str, ...]
    """Queue names in first-seen order (registered in the queue set before the jobs go in)."""
    calls: tuple[ScriptCall, ...]
    """The ``enqueue.lua`` calls: one per queue, or per ``ENQUEUE_BATCH`` jobs of a queue."""
    job_queues: list[str]
    """The queue of every call, in the caller's order."""
    job_ids: list[str]
    """The job id of every call, in the caller's order."""
    prefix: str
    payloads: tuple[bytes, ...] = ()
    """The JSON payload of every call, in the caller's order (what a worker decodes)."""

    @property
    def targets(self) -> list[tuple[str, str]]:
        """(queue, job id) of every call, in the caller's order (made on demand: a bulk
        enqueue's 20,000 pairs were objects for the garbage collector to walk)."""
        return list(zip(self.job_queues, self.job_ids, strict=True))


Tail = tuple[int, str, int, int, bytes]
"""The options a group of jobs shares: priority, due, max_deliveries, result_ttl, control."""


class _Batches:
    """The enqueue.lua calls of one queue: consecutive jobs that share their options form a
    group (sent and parsed once), and a call holds at most ``ENQUEUE_BATCH`` jobs. Each call
    carries a send token of its own (64 random bits; ``random`` is reseeded in a forked
    child): a resend of the same call carries the same one, so enqueue.lua recognises what
    its first send wrote."""

    __slots__ = ("args", "count_at", "done", "jobs", "keys", "tail")

    def __init__(self, keys: QueueKeys) -> None:
        self.keys = keys
        self.done: list[list[Any]] = []
        self._start()

    def _start(self) -> None:
        self.args: list[Any] = [self.keys.base, 0, "%016x" % random.getrandbits(64)]  # noqa: UP031
        self.tail: Tail | None = None
        self.count_at = 0
        self.jobs = 0

    def add(self, tail: Tail, job_id: str, payload: bytes) -> ScriptCall | None:
        """Add one job; returns the batch it completed, if it did."""
        args = self.args
        if tail is not self.tail and tail != self.tail:
            args[1] += 1
            self.count_at = len(args)
            args.append(0)
            args += tail
            self.tail = tail
        args[self.count_at] += 1
        args.append(job_id)
        args.append(payload)
        self.jobs += 1
        if self.jobs < ENQUEUE_BATCH:
            return None
        self.done.append(args)
        self._start()
        return (LUA["enqueue"], self.keys.script_keys, args)

    def calls(self) -> list[ScriptCall]:
        rest = [self.args] if self.jobs else []
        return [(LUA["enqueue"], self.keys.script_keys, a) for a in [*self.done, *rest]]

    def last(self) -> ScriptCall | None:
        """The batch not full yet, if it has jobs."""
        return (LUA["enqueue"], self.keys.script_keys, self.args) if self.jobs else None


def single_call(keys: QueueKeys, tail: Tail, job_id: str, payload: bytes) -> ScriptCall:
    """The enqueue.lua call of one job, laid out by ``_Batches`` (``short.py``)."""
    batches = _Batches(keys)
    batches.add(tail, job_id, payload)
    return (LUA["enqueue"], keys.script_keys, batches.args)


def laid_out(args: list[Any]) -> list[tuple[Any, ...]]:
    """The jobs of one enqueue.lua call's ARGV, one (id, payload, priority, due,
    max_deliveries, result_ttl, control) per job in order: the inverse of ``_Batches``, for
    tests and tools that read a plan."""
    jobs: list[tuple[Any, ...]] = []
    o = ENQUEUE_HEADER
    for _ in range(args[1]):
        count, tail = args[o], tuple(args[o + 1 : o + ENQUEUE_GROUP_FIELDS])
        o += ENQUEUE_GROUP_FIELDS
        for _ in range(count):
            jobs.append((args[o], args[o + 1], *tail))
            o += ENQUEUE_JOB_FIELDS
    return jobs


def plan_enqueue(
    calls: Iterable[Call],
    *,
    prefix: str = defaults.PREFIX,
    defaults_for: Callable[[str], TaskOptions] | None = None,
    queue: str | None = None,
    route: Callable[[str, Call, TaskOptions], str] | None = None,
    once: bool = False,
    sink: PlanSink | None = None,
) -> EnqueuePlan:
    """Validate and lay out ``calls``. ``defaults_for(task_name)`` gives a task's options
    (an App's registry); ``queue`` forces every call onto one queue; ``route(queue, call,
    options)`` names the partition of a partitioned queue that takes the call (``Partitioner
    .route``, which a callback's hand-off uses too). ``once``
    makes a job whose id exists in any state (even ended) a duplicate: a callback's hand-off,
    redone after a crash, never runs it twice.

    A call made by a task's template (``Task.s()`` with nothing changed, ``options.PLAIN``)
    is checked and laid out once per template: the calls of a bulk enqueue share the result
    (the same tail, so enqueue.lua reads their options once too).

    ``sink`` gets the plan's queues once every call is checked (and encoded, unless sure to
    encode), then each full batch as soon as it is laid out and each queue's last batch at
    the end: ``App.enqueue_many`` writes each to Redis then, so Redis runs the first batches
    while the rest are laid out (``EnqueueStream``)."""
    options_of = defaults_for or (lambda _name: TaskOptions())
    names: list[str] = []
    tails: list[Tail] = []
    given: list[str | None] = []
    payloads: list[bytes | None] = []
    later: list[Call] = []  # calls of a template whose arguments cannot be refused
    trace = tracing.inject()  # one caller, one moment: the same span for every call
    plain: dict[int, tuple[CallTemplate, str, Tail]] = {}
    encode = serialization.encode_call
    # 1. check and encode every call: anything refused is refused before a batch leaves
    for call in calls:
        template = plain_template(call)
        seen = None
        if template is not None:
            seen = plain.get(id(template))
            if seen is None:  # the first call of this template in this plan
                opts = options_of(call.task)
                last = template.planned  # a previous enqueue's, when it depended on the same
                if last is not None and last[0] is opts and last[1] == queue and last[2] is once:
                    seen = plain[id(template)] = (template, last[3], last[4])
        if seen is not None:
            name, tail = seen[1], seen[2]
            overrides = None
            late = sure_to_encode(call.args, call.kwargs)  # then encoded while laid out, below
        else:
            late = False
            check_call(call)
            opts = options_of(call.task)
            check_retry_overrides(call, opts.retry)
            name = validate_queue_name(queue or call.queue or opts.queue)
            tail = (
                opts.priority if call.priority is None else call.priority,
                call.due(),
                call.max_deliveries or opts.max_deliveries,
                call.result_ttl or opts.result_ttl,
                control_fields(call, opts, once),
            )
            overrides = call.overrides()
            if template is not None:
                plain[id(template)] = (template, name, tail)
                template.planned = (opts, queue, once, name, tail)
        if route is not None:  # a partitioned queue: the partition that takes this call
            name = route(name, call, options_of(call.task))
        if call.version is not None or call.pin_version is not False:  # its version's queue
            name = pinning.place(name, call, options_of(call.task))
        names.append(name)
        tails.append(tail)
        given.append(call.job_id)
        if late:
            payloads.append(None)
            later.append(call)
        else:
            payloads.append(encode(call.task, call.args, call.kwargs, overrides, trace))
    # 2. lay them out; a full batch goes to the sink at once (Redis runs it meanwhile)
    by_queue: dict[str, _Batches] = {}
    for name in names:
        if name not in by_queue:
            by_queue[name] = _Batches(QueueKeys.of(name, prefix))
    if sink is not None:
        sink.queues(tuple(by_queue))
    ids = PlanIds()
    job_ids: list[str] = []
    deferred = iter(later)
    for i, (name, tail, mine, ready) in enumerate(zip(names, tails, given, payloads, strict=True)):
        if ready is None:
            call = next(deferred)
            ready = payloads[i] = encode(call.task, call.args, call.kwargs, None, trace)  # noqa: PLW2901
        job_id = mine or ids.next()
        full = by_queue[name].add(tail, job_id, ready)
        if full is not None and sink is not None:
            sink.script(full)
        job_ids.append(job_id)
    script_calls = tuple(c for batches in by_queue.values() for c in batches.calls())
    if sink is not None:
        for batches in by_queue.values():
            last = batches.last()
            if last is not None:
                sink.script(last)
    encoded = cast(list[bytes], payloads)
    return EnqueuePlan(tuple(by_queue), script_calls, names, job_ids, prefix, tuple(encoded))


def created_flags(plan: EnqueuePlan, replies: Sequence[Any]) -> list[bool]:
    """Whether each job of the plan, in the caller's order, was enqueued by this call (True)
    or named a job that already existed (False), from the replies of ``plan.calls`` in their
    order. enqueue.lua answers 1 per job it enqueued, for this send or an earlier send of the
    same call (a resend after a lost reply), so the flags hold whichever send answered."""
    flags = [flag == 1 for reply in replies for flag in reply]
    if len(plan.queues) == 1:  # the calls of one queue hold its jobs in the caller's order
        return flags
    by_queue: dict[str, list[bool]] = {name: [] for name in plan.queues}
    name_of = {QueueKeys.of(name, plan.prefix).base: name for name in plan.queues}
    at = 0
    for (_, _, args), reply in zip(plan.calls, replies, strict=True):
        by_queue[name_of[args[0]]] += flags[at : at + len(reply)]
        at += len(reply)
    cursors = {name: iter(got) for name, got in by_queue.items()}
    return [next(cursors[name]) for name in plan.job_queues]


def sure_to_encode(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> bool:
    """Whether JSON encoding cannot refuse these arguments: ASCII strings, 64-bit integers,
    booleans, None and finite floats only. A bulk enqueue encodes such calls while it lays
    them out, after its first batches have gone to Redis; any other call is encoded before
    anything is sent, so a refused argument still leaves nothing enqueued."""
    for value in (*args, *kwargs.values()) if kwargs else args:
        kind = type(value)
        if kind is str:
            if not value.isascii():  # a lone surrogate is refused; ASCII never is
                return False
        elif kind is int:
            if not -(1 << 63) <= value < 1 << 64:
                return False
        elif kind is float:
            if not math.isfinite(value):
                return False
        elif value is not None and kind is not bool:
            return False
    return all(type(k) is str and k.isascii() for k in kwargs) if kwargs else True


class PlanSink(Protocol):
    """What takes a plan's parts while it is laid out (``EnqueueStream``)."""

    def queues(self, names: tuple[str, ...]) -> None:
        """Every queue of the plan, before any of its script calls."""

    def script(self, call: ScriptCall) -> None:
        """A batch: a full one as soon as it is laid out, each queue's last one at the end."""


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
    slot = limit_slot(call, opts)
    if slot is not None:
        out.update(cl_key=slot[0], cl_n=slot[1])
    fair = fair_key_of(call, opts)
    if fair is not None:
        out["fk"] = fair
    expires = call.expires if call.expires is not None else opts.expires
    if expires is not None:
        out.update(expires=expires_spec(expires))
    for kind in KINDS:
        callback = getattr(call, kind) or getattr(opts, kind)
        if callback is not None:
            where = f"task {call.task!r}: {kind}"
            out[kind] = serialization.dumps(encode_callback(callback, where)).decode()
    tags = call.tags if call.tags is not None else opts.tags
    if tags:
        out["tags"] = list(dict.fromkeys(tags))
    if once:
        out["once"] = True
    if call.depends_on:
        out["deps"] = len(call.depends_on)
        if call.allow_failure:
            out["allow_failure"] = True
    return serialization.dumps(out) if out else b""


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
    if call.fair_key is not None:
        check_fair_key(call.fair_key)
    check_worker_pool(call.worker_pool)
    if call.partition_key is not None and (
        not isinstance(call.partition_key, str) or not 0 < len(call.partition_key) <= 1024
    ):
        raise ValueError(
            f"partition_key must be a non-empty string of at most 1024 characters, "
            f"got {call.partition_key!r}"
        )
    if call.concurrency_limit is not None:
        check_count("concurrency_limit", call.concurrency_limit)
    if call.tags is not None:
        check_tags(call.tags)


def check_retry_overrides(call: Call, base: RetryPolicy) -> None:
    """Refuse per-call retry options that the worker would refuse (e.g. backoff_min above
    the task's backoff_max), here in the caller, naming the field."""
    changes = call.retry_overrides()
    if changes:
        try:
            replace(base, **changes)
        except ValueError as exc:
            raise ValueError(f"task {call.task!r}: {exc}") from None
