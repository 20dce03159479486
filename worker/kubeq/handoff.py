"""The hand-off of a parent's callback to its own queue: the second step of a workflow edge.

A callback may live on another queue, i.e. another Redis Cluster hash slot, and no kubeq
script touches two slots. So an edge is crossed in two steps (docs/architecture.md,
Decisions, Workflows): ``ack.lua`` (or any script that dead-letters) records, in the same
script that ends the parent, the parent's id in its queue's ``handoff`` set; then a worker
reads the parent, enqueues the callback into its queue under an id derived from the parent's
(``callbacks.callback_id``) with ``once`` (an existing job of that id, even ended, is a
duplicate), and only then removes the entry. A worker killed between the steps leaves the
entry: every worker of the queue sweeps entries older than ``defaults.HANDOFF_GRACE_SECONDS``
on its heartbeat and redoes them, and redoing is harmless, so a callback is enqueued at least
once and runs at most once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from . import defaults
from .callbacks import follow_up
from .dependencies import resolve_calls
from .edges import edge_call, entry
from .enqueue import plan_enqueue, send_async
from .keys import QueueKeys
from .options import TaskOptions
from .scripts import run_pipeline_async

log = logging.getLogger("kubeq.worker")

__all__ = ["hand_off", "sweep"]

_LIVE = frozenset({"queued", "scheduled", "active", "waiting", "deferred"})
"""Statuses of a job that has not ended (again)."""


async def hand_off(
    client: Any,
    queue: QueueKeys,
    ids: Iterable[str],
    defaults_for: Callable[[str], TaskOptions],
) -> int:
    """Enqueue the callbacks of these ended parents of ``queue``, then forget them; returns
    how many callbacks were sent (a duplicate counts: the script finds the first)."""
    sent = 0
    for parent in ids:
        fields = await client.hmget(
            queue.job(parent),
            ["status", "result", "error", "reason", "on_success", "on_failure", "cb"],
        )
        status, result, error, reason, on_success, on_failure, marker = fields
        state = (status or b"missing").decode()
        if state in _LIVE:
            # requeued from the dead letters before its hand-off: its next end notes it again
            await client.zrem(queue.handoff, parent)
            continue
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
                    [call], prefix=queue.prefix, defaults_for=defaults_for, once=True
                )
                await send_async(client, plan)
                sent += 1
                await _note_edge(client, queue, parent, plan.targets[0])
        except (ValueError, TypeError) as exc:
            # written by hand or by another version: retrying cannot fix it
            log.error("job %s: its callback could not be enqueued and is dropped: %s", parent, exc)
        if marker and b"d" in marker:
            await _resolve_dependents(client, queue, parent, state)
        await client.zrem(queue.handoff, parent)
    return sent


async def _note_edge(client: Any, queue: QueueKeys, parent: str, child: tuple[str, str]) -> None:
    """List the callback among the parent's children, and the parent as its parent, for
    people (``kubeq job ID``; edges.py). Idempotent, like the rest of the hand-off."""
    child_keys = QueueKeys.of(child[0], queue.prefix)
    await run_pipeline_async(
        client,
        [
            edge_call(queue, parent, "children", [entry(*child)]),
            edge_call(child_keys, child[1], "parents", [entry(queue.name, parent)]),
        ],
    )


async def _resolve_dependents(client: Any, queue: QueueKeys, parent: str, status: str) -> None:
    """Tell each child waiting on ``parent`` that it ended (resolve.lua on the child's queue;
    idempotent), then forget the edges."""
    key = queue.dependents(parent)
    children = [m.decode().split("\t", 1) for m in await client.smembers(key)]
    calls = [
        resolve_calls(queue.prefix, (c[0], c[1]), (queue.name, parent), status)
        for c in children
        if len(c) == 2
    ]
    if calls:
        await run_pipeline_async(client, calls)
    await client.delete(key)


async def sweep(
    client: Any, queues: Iterable[QueueKeys], defaults_for: Callable[[str], TaskOptions]
) -> int:
    """Redo the hand-offs a worker left unfinished (it died after its ack): entries older
    than the grace period, at most 100 per queue per call."""
    before = int((time.time() - defaults.HANDOFF_GRACE_SECONDS) * 1000)
    sent = 0
    for q in queues:
        ids = await client.zrangebyscore(q.handoff, "-inf", before, start=0, num=100)
        if ids:
            sent += await hand_off(client, q, [i.decode() for i in ids], defaults_for)
    return sent
