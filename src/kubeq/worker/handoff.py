"""The hand-off of a parent's callback to its own queue: the second step of a workflow edge.

A callback may live on another queue, i.e. another Redis Cluster hash slot, and no kubeq
script touches two slots. So an edge is crossed in two steps (docs/architecture.md,
Decisions, Workflows): ``ack.lua`` (or any script that dead-letters) records, in the same
script that ends the parent, the parent's id in its queue's ``handoff`` set; then a worker
reads the parent, enqueues the callback into its queue under an id derived from the parent's
(``callbacks.callback_id``) with ``once`` (an existing job of that id, even ended, is a
duplicate) and a send token derived from the parent's end (``_send_token``: every hand-off
of one end is a resend of the same call, so a callback deleted since, by a purge, leaves a
receipt that its redone hand-off finds, and it is not enqueued again), and only then removes
the entry. A callback on a partitioned queue goes to the
partition ``route`` names for that id (``partitions.Partitioner.route``, as an enqueue
does), so a redone hand-off finds the first one and the caller's ``ChainResult`` knows where
it is. A worker killed between the steps leaves the
entry: a worker of the queue sweeps entries older than ``defaults.HANDOFF_GRACE_SECONDS`` in
its turn (sweeps.py: one worker at a time per queue) and redoes them, and redoing is
harmless, so a callback is enqueued at least once and runs at most once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from redis.exceptions import NoScriptError, ResponseError

from kubeq import defaults
from kubeq.client.enqueue import plan_enqueue
from kubeq.options import Call, TaskOptions
from kubeq.store import cluster as rediscluster
from kubeq.store.jobfields import HANDOFF_FIELDS
from kubeq.store.keys import QueueKeys, queues_key, validate_job_id, validate_queue_name
from kubeq.store.scripts import LUA, ScriptCall, fenced, run_pipeline_async
from kubeq.workflows.callbacks import follow_up
from kubeq.workflows.dependencies import read_record, relink, resolve_calls
from kubeq.workflows.edges import edge_call, entry

log = logging.getLogger("kubeq.worker")

__all__ = ["Route", "hand_off", "sweep"]

Route = Callable[[str, Call, TaskOptions], str]
"""The partition of a queue that takes a call (``Partitioner.route``)."""

_LIVE = frozenset({"queued", "scheduled", "active", "waiting", "deferred", "sleeping"})
"""Statuses of a job that has not ended (again)."""


async def hand_off(
    client: Any,
    queue: QueueKeys,
    ids: Iterable[str | bytes],
    defaults_for: Callable[[str], TaskOptions],
    route: Route | None = None,
) -> int:
    """Enqueue the callbacks of these ended parents of ``queue`` and resolve their children,
    then forget them; returns how many callbacks were sent (a duplicate counts: the script
    finds the first). Batched: one round trip reads every parent, one runs every enqueue,
    edge and resolve script in order, one forgets the entries (plus one to register a
    callback's queue when there are callbacks).

    One bad entry never stops the others: an entry that cannot be read (an id that is not
    a job id, a job key or dependents set of another type, an undecodable status) is moved
    to ``{q}:handoff:aside`` with the reason and logged; a child entry that cannot be read
    is logged and skipped; an entry whose scripts Redis refused stays, re-scored to now, so
    the next sweep's batch starts with the others."""
    entries = list(ids)
    if not entries:
        return 0
    aside: dict[str | bytes, str] = {}
    parents: list[tuple[str | bytes, str]] = []
    for raw in entries:
        try:
            parents.append((raw, _job_id(raw)))
        except ValueError as exc:
            aside[raw] = f"not a job id: {exc}"
    pipe = client.pipeline(transaction=False)
    for _, parent in parents:
        pipe.hmget(queue.job(parent), HANDOFF_FIELDS)
        pipe.smembers(queue.dependents(parent))
        pipe.zscore(queue.handoff, parent)
    replies = await pipe.execute(raise_on_error=False) if parents else []
    scripts: list[ScriptCall] = []
    owner: list[str | bytes] = []
    """The entry each script call is for (to keep an entry whose scripts were refused)."""
    callback_queues: set[str] = set()
    handed: list[tuple[str | bytes, str, Any, list[bytes]]] = []
    """(entry, job id, score read, dependents told) of each entry read: forgotten at the end."""
    sent = 0
    for k, (raw, parent) in enumerate(parents):
        fields, children, score = replies[3 * k : 3 * k + 3]
        try:
            plan = _plan_one(queue, parent, fields, children, defaults_for, aside, route)
        except _Unreadable as exc:
            aside[raw] = str(exc)
            continue
        told = list(children) if plan is not None and plan.dependents else []
        handed.append((raw, parent, score, told))
        if plan is None:
            continue  # requeued from the dead letters before its hand-off: its next end notes it
        callback_queues.update(plan.queues)
        scripts += plan.calls
        owner += [raw] * len(plan.calls)
        sent += plan.callback
    if callback_queues:
        await client.sadd(queues_key(queue.prefix), *sorted(callback_queues))
    refused: dict[str | bytes, BaseException] = {}
    if scripts:
        results = await run_pipeline_async(client, scripts, raise_errors=False)
        for raw, result in zip(owner, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, ResponseError) or rediscluster.is_outage(result):
                    raise result  # an outage: the whole batch is redone later
                refused.setdefault(raw, result)
    for raw, err in refused.items():
        log.error("hand-off of job %r refused by Redis (retried later): %s", raw, err)
    await _forget(client, queue, entries, handed, aside, refused)
    return sent


async def _forget(
    client: Any,
    queue: QueueKeys,
    entries: list[str | bytes],
    handed: list[tuple[str | bytes, str, Any, list[bytes]]],
    aside: dict[str | bytes, str],
    refused: dict[str | bytes, BaseException],
) -> None:
    """The last round trip: forget each entry handed off as far as it was read
    (``handed.lua``), set aside what could not be read, and re-score the refused ones."""
    forget: list[Any] = []
    n = 0
    for raw, parent, score, told in handed:
        if raw not in refused:
            read = "" if score is None or isinstance(score, BaseException) else repr(score)
            forget += [parent, read, len(told), *told]
            n += 1
    pipe = client.pipeline(transaction=False)
    call: ScriptCall = (LUA["handed"], [queue.handoff], [queue.base, n, *forget])
    if n:
        pipe.execute_command(*_evalsha(call))
    for raw, why in aside.items():
        log.error(
            "hand-off entry %r of queue %s set aside in %s: %s",
            raw,
            queue.name,
            queue.handoff_aside,
            why,
        )
        pipe.hset(queue.handoff_aside, raw, why)
    unread = [raw for raw in entries if raw in aside]
    if unread:
        pipe.zrem(queue.handoff, *unread)
    if refused:
        now_ms = int(time.time() * 1000)
        pipe.zadd(queue.handoff, dict.fromkeys(refused, now_ms), xx=True)
    replies = await pipe.execute(raise_on_error=False)
    if n and isinstance(replies[0], NoScriptError):  # Redis restarted: load it, run it again
        await run_pipeline_async(client, [call])
    for reply in replies:
        if isinstance(reply, NoScriptError):
            continue
        if isinstance(reply, ResponseError):  # e.g. the aside key of another type
            log.error("hand-off of queue %s: %s", queue.name, reply)
        elif isinstance(reply, BaseException):
            raise reply


def _evalsha(call: ScriptCall) -> tuple[Any, ...]:
    script, keys, args = call
    declared = fenced(keys)
    return ("EVALSHA", script.sha, len(declared), *declared, *args)


class _Plan(NamedTuple):
    """What the hand-off of one ended parent sends."""

    calls: list[ScriptCall]
    """Its callback's enqueue and edge calls, then a resolve call per child."""
    queues: list[str]
    """The callback's queue (registered in the queue set first)."""
    callback: bool
    """A callback is enqueued."""
    dependents: bool
    """It had children waiting (its dependents set is forgotten once they are told)."""


class _Unreadable(Exception):
    """A hand-off entry that no retry can read: it is set aside."""


def _job_id(raw: str | bytes) -> str:
    """The job id of a hand-off entry; ValueError when it cannot be one."""
    return validate_job_id(raw.decode() if isinstance(raw, bytes) else raw)


def _plan_one(
    queue: QueueKeys,
    parent: str,
    fields: Any,
    children: Any,
    defaults_for: Callable[[str], TaskOptions],
    aside: dict[str | bytes, str],
    route: Route | None = None,
) -> _Plan | None:
    """What to send for one ended parent (None: it has not ended, after all); raises
    _Unreadable when its fields or its dependents set cannot be read."""
    if isinstance(fields, BaseException):
        raise _Unreadable(f"its job key {queue.job(parent)} cannot be read: {fields}")
    status, result, error, reason, on_success, on_failure, marker, ended_at = fields
    try:
        state = (status or b"missing").decode()
    except UnicodeDecodeError:
        raise _Unreadable(f"its status {status!r} is not UTF-8") from None
    if state in _LIVE:
        return None
    has_dependents = bool(marker and b"d" in marker)
    if has_dependents and isinstance(children, BaseException):
        raise _Unreadable(f"its dependents set cannot be read: {children}")
    scripts: list[ScriptCall] = []
    queues: list[str] = []
    sent = False
    text = (error or reason or b"").decode("utf-8", "replace")
    try:
        call = follow_up(
            parent,
            state,
            result,
            text,
            {"on_success": on_success, "on_failure": on_failure},
        )
        if call is not None:
            plan = plan_enqueue(
                [call], prefix=queue.prefix, defaults_for=defaults_for, route=route, once=True
            )
            queues += plan.queues
            token = _send_token(queue, parent, ended_at)
            scripts += [(s, keys, [*args[:2], token, *args[3:]]) for s, keys, args in plan.calls]
            # then the edges, which need the callback's hash
            scripts += _edge_calls(queue, parent, plan.targets[0])
            sent = True
    except (ValueError, TypeError) as exc:
        # written by hand or by another version: retrying cannot fix it
        log.error("job %s: its callback could not be enqueued and is dropped: %s", parent, exc)
    if has_dependents:
        scripts += _resolve_calls(queue, parent, state, result, children, aside)
    return _Plan(scripts, queues, sent, has_dependents)


def _send_token(queue: QueueKeys, parent: str, ended_at: bytes | None) -> str:
    """The send token of the enqueue of a parent's callback for one end of the parent: the
    same for every hand-off of that end (the worker's, a sweep's), so enqueue.lua takes each
    after the first for a resend of it. A callback purged meanwhile left its token as a
    receipt (purge.lua, keep_receipt), so a hand-off still under way does not bring it
    back; a later end of the parent (requeued from the dead letters) gets a token of its
    own. It replaces the random token of ``plan_enqueue`` (the third ARGV of enqueue.lua),
    with as many hex digits (docs/protocol.md)."""
    end = f"{queue.name}\t{parent}\t{(ended_at or b'').decode('ascii', 'replace')}"
    return hashlib.sha1(end.encode(), usedforsecurity=False).hexdigest()[:16]


def _edge_calls(queue: QueueKeys, parent: str, child: tuple[str, str]) -> list[ScriptCall]:
    """List the callback among the parent's children, and the parent as its parent, for
    people (``kubeq job ID``; edges.py). Idempotent, like the rest of the hand-off."""
    child_keys = QueueKeys.of(child[0], queue.prefix)
    return [
        edge_call(queue, parent, "children", [entry(*child)]),
        edge_call(child_keys, child[1], "parents", [entry(queue.name, parent)]),
    ]


def _resolve_calls(
    queue: QueueKeys,
    parent: str,
    status: str,
    result: bytes | None,
    members: Iterable[bytes],
    aside: dict[str | bytes, str],
) -> list[ScriptCall]:
    """Tell each child waiting on ``parent`` that it ended (resolve.lua on the child's queue;
    idempotent), a chord's callback with the parent's result. A member that names no child
    (not UTF-8, not ``<queue>\\t<id>``) is noted in ``aside`` under
    ``dependents:<parent>:<member>`` and skipped."""
    calls = []
    for m in members:
        try:
            parts = m.decode().split("\t")
            if len(parts) not in (2, 3) or parts[2:] not in ([], ["r"]):
                raise ValueError("expected <queue><TAB><id>, then <TAB>r for a chord")
            calls.append(
                resolve_calls(
                    queue.prefix,
                    (validate_queue_name(parts[0]), validate_job_id(parts[1])),
                    (queue.name, parent),
                    status,
                    (result or b"null") if parts[2:] and status == "finished" else None,
                )
            )
        except ValueError as exc:
            aside[b"dependents:" + parent.encode() + b":" + m] = f"not a child: {exc}"
    return calls


async def sweep(
    client: Any,
    queues: Iterable[QueueKeys],
    defaults_for: Callable[[str], TaskOptions],
    route: Route | None = None,
) -> int:
    """Redo the hand-offs a worker left unfinished (it died after its ack), and the links of
    deferred children whose caller died before their edges were registered: entries older
    than the grace period, at most 100 of each per queue per call."""
    now = time.time()
    before = int((now - defaults.HANDOFF_GRACE_SECONDS) * 1000)
    queues = list(queues)
    pipe = client.pipeline(transaction=False)  # one round trip reads what every queue left
    for q in queues:
        pipe.zrangebyscore(q.handoff, "-inf", before, start=0, num=100)
        pipe.zrangebyscore(q.linking, "-inf", before, start=0, num=100, withscores=True)
    found = await pipe.execute(raise_on_error=False) if queues else []
    for reply in found:
        if isinstance(reply, BaseException) and rediscluster.is_outage(reply):
            raise reply
    sent = 0
    for k, q in enumerate(queues):
        ids, linking = found[2 * k], found[2 * k + 1]
        for key, reply in ((q.handoff, ids), (q.linking, linking)):
            if isinstance(reply, BaseException):  # e.g. a key of another type: a person looks
                log.error("hand-off sweep of queue %s cannot read %s: %s", q.name, key, reply)
        if isinstance(linking, BaseException):
            linking = []
        if isinstance(ids, BaseException):
            continue
        if ids:
            sent += await hand_off(client, q, ids, defaults_for, route)
        if linking:
            await _relink(client, q, linking, int((now - ORPHAN_SECONDS) * 1000))
    return sent


ORPHAN_SECONDS = 6 * defaults.HANDOFF_GRACE_SECONDS
"""How long a link record whose child does not exist is kept: its caller died before the
child was enqueued (or is still about to enqueue it)."""


async def _relink(
    client: Any, q: QueueKeys, linking: list[tuple[bytes, float]], orphaned: int
) -> None:
    """Redo the link of each deferred child in ``linking`` (idempotent), and forget a record
    whose child has left ``deferred`` or never came."""
    pipe = client.pipeline(transaction=False)
    for raw, _ in linking:
        text = raw.decode("utf-8", "replace")
        pipe.get(q.links(text))
        pipe.hget(q.job(text), "status")
    replies = await pipe.execute(raise_on_error=False)
    drop: list[str] = []
    for k, (raw, score) in enumerate(linking):
        record, status = replies[2 * k], replies[2 * k + 1]
        try:
            child = _job_id(raw)
        except ValueError:
            await client.zrem(q.linking, raw)
            continue
        found = None if isinstance(record, BaseException) else read_record(record)
        if status == b"deferred" and found is not None:
            parents, results = found
            log.warning("job %s: its caller died while linking it; linking it again", child)
            await relink(client, q.prefix, (q.name, child), parents, results)
        elif status is None and found is not None and score > orphaned:
            continue  # its caller may still enqueue it
        else:
            drop.append(child)
    if drop:
        await run_pipeline_async(client, [(LUA["links"], [q.linking], [q.base, "done", *drop])])
