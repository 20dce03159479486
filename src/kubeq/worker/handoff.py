"""The hand-off of a parent's callback to its own queue: the second step of a workflow edge.

A callback may live on another queue, i.e. another Redis Cluster hash slot, and no kubeq
script touches two slots. So an edge is crossed in two steps (docs/architecture.md,
Decisions, Workflows): ``ack.lua`` (or any script that dead-letters) records, in the same
script that ends the parent, the parent's id in its queue's ``handoff`` set; then a worker
reads the parent, enqueues the callback into its queue under an id derived from the parent's
(``callbacks.callback_id``) with ``once`` (an existing job of that id, even ended, is a
duplicate), and only then removes the entry. A callback on a partitioned queue goes to the
partition ``route`` names for that id (``partitions.Partitioner.route``, as an enqueue
does), so a redone hand-off finds the first one and the caller's ``ChainResult`` knows where
it is. A worker killed between the steps leaves the
entry: every worker of the queue sweeps entries older than ``defaults.HANDOFF_GRACE_SECONDS``
on its heartbeat and redoes them, and redoing is harmless, so a callback is enqueued at least
once and runs at most once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from kubeq import defaults
from kubeq.client.enqueue import plan_enqueue
from kubeq.options import Call, TaskOptions
from kubeq.store.jobfields import HANDOFF_FIELDS
from kubeq.store.keys import QueueKeys, queues_key
from kubeq.store.scripts import ScriptCall, run_pipeline_async
from kubeq.workflows.callbacks import follow_up
from kubeq.workflows.dependencies import resolve_calls
from kubeq.workflows.edges import edge_call, entry

log = logging.getLogger("kubeq.worker")

__all__ = ["Route", "hand_off", "sweep"]

Route = Callable[[str, Call, TaskOptions], str]
"""The partition of a queue that takes a call (``Partitioner.route``)."""

_LIVE = frozenset({"queued", "scheduled", "active", "waiting", "deferred"})
"""Statuses of a job that has not ended (again)."""


async def hand_off(
    client: Any,
    queue: QueueKeys,
    ids: Iterable[str],
    defaults_for: Callable[[str], TaskOptions],
    route: Route | None = None,
) -> int:
    """Enqueue the callbacks of these ended parents of ``queue`` and resolve their children,
    then forget them; returns how many callbacks were sent (a duplicate counts: the script
    finds the first). Batched: one round trip reads every parent, one runs every enqueue,
    edge and resolve script in order, one forgets the entries (plus one to register a
    callback's queue when there are callbacks)."""
    ids = list(ids)
    if not ids:
        return 0
    pipe = client.pipeline(transaction=False)
    for parent in ids:
        pipe.hmget(queue.job(parent), HANDOFF_FIELDS)
        pipe.smembers(queue.dependents(parent))
    replies = await pipe.execute()
    scripts: list[ScriptCall] = []
    callback_queues: set[str] = set()
    resolved: list[str] = []
    sent = 0
    for k, parent in enumerate(ids):
        fields, children = replies[2 * k], replies[2 * k + 1]
        status, result, error, reason, on_success, on_failure, marker = fields
        state = (status or b"missing").decode()
        if state in _LIVE:
            continue  # requeued from the dead letters before its hand-off: its next end notes it
        text = (error or reason or b"").decode("utf-8", "replace")
        try:
            call = follow_up(
                parent,
                (status or b"").decode(),
                result,
                text,
                {"on_success": on_success, "on_failure": on_failure},
            )
            if call is not None:
                plan = plan_enqueue(
                    [call], prefix=queue.prefix, defaults_for=defaults_for, route=route, once=True
                )
                callback_queues.update(plan.queues)
                scripts += plan.calls  # then the edges, which need the callback's hash
                scripts += _edge_calls(queue, parent, plan.targets[0])
                sent += 1
        except (ValueError, TypeError) as exc:
            # written by hand or by another version: retrying cannot fix it
            log.error("job %s: its callback could not be enqueued and is dropped: %s", parent, exc)
        if marker and b"d" in marker:
            scripts += _resolve_calls(queue, parent, state, children)
            resolved.append(parent)
    if callback_queues:
        await client.sadd(queues_key(queue.prefix), *sorted(callback_queues))
    if scripts:
        await run_pipeline_async(client, scripts)
    pipe = client.pipeline(transaction=False)
    for parent in resolved:
        pipe.delete(queue.dependents(parent))  # the edges are resolved: forget them
    pipe.zrem(queue.handoff, *ids)
    await pipe.execute()
    return sent


def _edge_calls(queue: QueueKeys, parent: str, child: tuple[str, str]) -> list[ScriptCall]:
    """List the callback among the parent's children, and the parent as its parent, for
    people (``kubeq job ID``; edges.py). Idempotent, like the rest of the hand-off."""
    child_keys = QueueKeys.of(child[0], queue.prefix)
    return [
        edge_call(queue, parent, "children", [entry(*child)]),
        edge_call(child_keys, child[1], "parents", [entry(queue.name, parent)]),
    ]


def _resolve_calls(
    queue: QueueKeys, parent: str, status: str, members: Iterable[bytes]
) -> list[ScriptCall]:
    """Tell each child waiting on ``parent`` that it ended (resolve.lua on the child's queue;
    idempotent)."""
    children = [m.decode().split("\t", 1) for m in members]
    return [
        resolve_calls(queue.prefix, (c[0], c[1]), (queue.name, parent), status)
        for c in children
        if len(c) == 2
    ]


async def sweep(
    client: Any,
    queues: Iterable[QueueKeys],
    defaults_for: Callable[[str], TaskOptions],
    route: Route | None = None,
) -> int:
    """Redo the hand-offs a worker left unfinished (it died after its ack): entries older
    than the grace period, at most 100 per queue per call."""
    before = int((time.time() - defaults.HANDOFF_GRACE_SECONDS) * 1000)
    sent = 0
    for q in queues:
        ids = await client.zrangebyscore(q.handoff, "-inf", before, start=0, num=100)
        if ids:
            sent += await hand_off(client, q, [i.decode() for i in ids], defaults_for, route)
    return sent
