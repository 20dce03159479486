"""A one-call enqueue's short path: ``delay()`` of a plain call (a task's template with only
its arguments set) lays out its ``enqueue.lua`` call from what the whole plan kept on the
template the last time (``CallTemplate.planned``: the queue and the options' tail) and sends
it as ``send`` does. What changes from one such call to the next is made anew (the payload,
the job id, the send token); the checks and the options are the plan's own. The whole plan
cost a one-call enqueue's client a fifth more CPU (bench/README.md, "A lone delay() skips the
plan").

The path is taken only where the whole plan would lay out the very same call: the template
planned before with these options, no forced queue, no flow (debounce, singleton, batch), no
pinned version, no worker pool in the pools table (read as the plan reads it), a queue not
partitioned, no replicas to wait for, not eager, and a queue this process has registered.
Any other call gets None and takes the whole plan.
"""

from __future__ import annotations

from typing import Any, Protocol

from kubeq import serialization, tracing
from kubeq.client.enqueue import single_call
from kubeq.client.flow import flow_for
from kubeq.client.jobs import Job
from kubeq.client.pools import PoolCache, needs_route
from kubeq.options import Call, TaskOptions, plain_template
from kubeq.store.backend import Backend
from kubeq.store.ids import new_job_id
from kubeq.store.keys import QueueKeys
from kubeq.store.resend import resent
from kubeq.store.scripts import run_pipeline


class ShortApp(Backend, Protocol):
    """What the short path reads of an App."""

    eager: Any
    pools: PoolCache
    wait_replicas: int


def enqueue_one(app: ShortApp, call: Call, known_queues: set[str]) -> Job | None:
    """``call`` enqueued by the short path, or None when it needs the whole plan."""
    template = plain_template(call)
    planned = template.planned if template is not None else None
    if planned is None:
        return None
    opts: TaskOptions = planned[0]
    name: str = planned[3]
    if (
        opts is not app.defaults_for(call.task)
        or planned[1] is not None  # the plan's forced queue
        or planned[2]  # once: a callback's hand-off
        or name not in known_queues
        or app.eager is not None
        or app.wait_replicas
        or app.partitioner.count(name) > 1  # partitioned: the plan routes it
        or call.version is not None
        or (call.pin_version is not False and (call.pin_version or opts.pin_version))
        or flow_for(call, opts) is not None
    ):
        return None
    # the pools table as the plan reads it: when Redis cannot be read, what the plan would
    # refuse first (for such a call, its arguments) is refused before the error is raised
    table = app.pools.table(app.redis, lambda: _encode(call, None))
    if needs_route(table, (call,), app.defaults_for):  # a worker pool may take it
        return None
    payload = _encode(call, tracing.inject())
    job_id = new_job_id()
    script = single_call(QueueKeys.of(name, app.prefix), planned[4], job_id, payload)
    replies = resent(lambda: run_pipeline(app.redis, [script]), "enqueue")
    return Job(app, name, job_id, replies[0][0] == 1)


def _encode(call: Call, trace: dict[str, str] | None) -> bytes:
    """The call's payload, as the plan encodes a template's call (no per-call options)."""
    return serialization.encode_call(call.task, call.args, call.kwargs, None, trace)
