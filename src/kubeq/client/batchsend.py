"""Sending the items of batch tasks in bulk (docs/patterns.md, Batches): the items of one
``enqueue_many`` are checked, encoded and laid out by the one enqueue plan (once, for all of
them), then grouped by queue and batch key into ``batch.lua`` calls of up to ``BATCH_SEND``
items each, pipelined in one round trip. Each item still gets its own job id and handle;
``batch.lua`` adds the items of one call in order, as if each were sent alone.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any

from kubeq import serialization
from kubeq.client.enqueue import laid_out, plan_enqueue
from kubeq.options import Call, TaskOptions
from kubeq.patterns import Flow
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, ScriptCall

BATCH_SEND = 500
"""Items per ``batch.lua`` call at most: a bulk enqueue of many items of one key is split so
that no one script holds Redis for long (500 items take it a few ms), all pipelined."""

Route = Callable[[str, Call, TaskOptions], str]

Planned = tuple[str, ScriptCall, list[int]]
"""(queue, the batch.lua call, the positions of its items among the caller's calls)."""


def plan_items(
    calls: Sequence[Call],
    flows: Sequence[Flow],
    positions: Sequence[int],
    *,
    prefix: str,
    defaults_for: Callable[[str], TaskOptions],
    queue: str | None,
    route: Route | None,
) -> list[Planned]:
    """The batch.lua calls of the items ``calls`` (each of ``flows``, mode ``batch``;
    checked and bared of their flow options by client/flow.py), at ``positions`` of the
    caller's list. Nothing is sent; a refused item refuses them all."""
    plan = plan_enqueue(calls, prefix=prefix, defaults_for=defaults_for, queue=queue, route=route)
    jobs = _jobs_in_order(plan.calls, plan.job_queues, prefix)
    _check_controls(calls, jobs)
    groups: dict[tuple[str, str, int, int, str], list[int]] = {}
    for n, (name, flow, call) in enumerate(zip(plan.job_queues, flows, calls, strict=True)):
        groups.setdefault((name, flow.key, flow.window_ms, flow.max_ms, call.task), []).append(n)
    planned: list[Planned] = []
    carriers: dict[str, bytes] = {}
    for (name, key, wait_ms, size, task), members in groups.items():
        carrier = carriers.get(task)
        if carrier is None:
            carrier = carriers[task] = serialization.encode_call(task, [], {}, {"batch": 1})
        keys = QueueKeys.of(name, prefix)
        for start in range(0, len(members), BATCH_SEND):
            chunk = members[start : start + BATCH_SEND]
            token = "%016x" % random.getrandbits(64)  # noqa: UP031
            args: list[Any] = [keys.base, "batch", key, wait_ms, size, token, carrier]
            for n in chunk:
                args += jobs[n]
            planned.append(
                (name, (LUA["batch"], keys.script_keys, args), [positions[n] for n in chunk])
            )
    return planned


def _jobs_in_order(
    script_calls: Sequence[ScriptCall], job_queues: Sequence[str], prefix: str
) -> list[tuple[Any, ...]]:
    """Each call's job as enqueue.lua would get it (id, payload, priority, due,
    max_deliveries, result_ttl, control), in the calls' order: a queue's enqueue.lua calls
    hold its jobs in that order."""
    by_base: dict[str, list[tuple[Any, ...]]] = {}
    for _, _, args in script_calls:
        by_base.setdefault(args[0], []).extend(laid_out(args))
    cursors = {base: iter(jobs) for base, jobs in by_base.items()}
    bases: dict[str, str] = {}
    out = []
    for name in job_queues:
        base = bases.get(name)
        if base is None:
            base = bases[name] = QueueKeys.of(name, prefix).base
        out.append(next(cursors[base]))
    return out


def _check_controls(calls: Sequence[Call], jobs: Sequence[tuple[Any, ...]]) -> None:
    """Refuse an item whose options hold more than an expiry (checked once per distinct
    set of options)."""
    seen: set[bytes] = set()
    for call, job in zip(calls, jobs, strict=True):
        control = job[-1]
        if not control or control in seen:
            continue
        if set(json.loads(control)) != {"expires"}:
            raise ValueError(
                f"task {call.task!r} with batch: its items take no rate or concurrency limit "
                "or callbacks, only expires= (give those to the task that handles the "
                "batch's results)"
            )
        seen.add(control)
