"""A job's place in its workflow, for people: its parents and children with their status.

``kubeq job ID`` and ``Job.edges()`` answer "what is this job waiting for, and what waits for
it?". The edges are recorded beside the mechanism, never instead of it: ``depend.lua`` notes
a dependent child on its parent, ``dependencies.link`` notes the parents on the child, and
the hand-off notes a callback on its parent and the parent on the callback (``edge.lua``),
each in the job's own hash (its own hash slot), so they expire with the job. A callback not
handed off yet is found from the parent's stored signature, under the id and in the
partition it will get (``callbacks.callback_id``, ``Partitioner.route``). At most
``defaults.WORKFLOW_EDGES_KEPT`` edges are kept per side; the rest are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from kubeq import defaults, serialization
from kubeq.store.backend import Backend
from kubeq.store.jobfields import text
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, ScriptCall
from kubeq.workflows.callbacks import KINDS, callback_id, decode_callback

__all__ = ["Edge", "Edges", "edge_call", "entry", "read_edges"]


def entry(queue: str, job_id: str) -> str:
    """How an edge names a job: ``<queue>/<id>`` (neither may contain a slash)."""
    return f"{queue}/{job_id}"


def edge_call(keys: QueueKeys, job_id: str, side: str, entries: Sequence[str]) -> ScriptCall:
    """The edge.lua call adding ``entries`` to a job's ``parents`` or ``children``."""
    return (
        LUA["edge"],
        [keys.job(job_id)],
        [side, defaults.WORKFLOW_EDGES_KEPT, *entries],
    )


@dataclass(frozen=True)
class Edge:
    """One neighbour of a job in its workflow."""

    queue: str
    id: str
    status: str
    """Its status now; ``unknown`` once it has expired, ``not enqueued`` for a callback its
    parent has not handed off yet."""
    via: str = ""
    """How it is linked when that is not plain ``depends_on``: ``on_success``,
    ``on_failure``."""


@dataclass(frozen=True)
class Edges:
    """A job's parents and children (``Job.edges()``)."""

    parents: list[Edge]
    children: list[Edge]
    more_parents: int = 0
    """Parents not listed (over ``defaults.WORKFLOW_EDGES_KEPT``)."""
    more_children: int = 0


_FIELDS = ["parents", "children", "parents_more", "children_more", "status", *KINDS]


def read_edges(app: Backend, queue: str, job_id: str) -> Edges:
    """Two round trips: the job's recorded edges, then each neighbour's status."""
    keys = QueueKeys.of(queue, app.prefix)
    # the cast: redis-py before 8.0 types a reply as "T | Awaitable[T]"
    values = cast("list[Any]", app.redis.hmget(keys.job(job_id), _FIELDS))
    raw = dict(zip(_FIELDS, values, strict=True))
    parents = _split(raw["parents"])
    children = _split(raw["children"])
    pending: dict[tuple[str, str], str] = {}
    for kind in KINDS:
        cb = _callback_target(app, raw[kind], job_id, kind)
        if cb is not None and cb not in children:
            pending[cb] = kind
    everyone = [*parents, *children, *pending]
    pipe = app.redis.pipeline(transaction=False)
    for q, i in everyone:
        pipe.hget(QueueKeys.of(q, app.prefix).job(i), "status")
    statuses = dict(zip(everyone, (text(s) for s in pipe.execute()), strict=True))
    return Edges(
        parents=[Edge(q, i, statuses[q, i] or "unknown", _via(job_id, i)) for q, i in parents],
        children=[Edge(q, i, statuses[q, i] or "unknown", _via(i, job_id)) for q, i in children]
        + [Edge(q, i, statuses[q, i] or "not enqueued", kind) for (q, i), kind in pending.items()],
        more_parents=int(raw["parents_more"] or 0),
        more_children=int(raw["children_more"] or 0),
    )


def _callback_target(
    app: Backend, raw: bytes | str | None, parent: str, kind: str
) -> tuple[str, str] | None:
    """Where a stored callback signature will be enqueued: (queue, derived id); on a
    partitioned queue, the partition the hand-off will route it to."""
    if not raw:
        return None
    try:
        call = decode_callback(serialization.loads(raw))
    except (ValueError, KeyError, TypeError):
        return None  # written by hand: the hand-off logs and drops it
    job_id = callback_id(parent, kind)
    options = app.defaults_for(call.task)
    queue = app.partitioner.route(call.queue or options.queue, call.set(job_id=job_id), options)
    return queue, job_id


def _via(child: str, parent: str) -> str:
    for kind in KINDS:
        if child == callback_id(parent, kind):
            return kind
    return ""


def _split(raw: bytes | str | None) -> list[tuple[str, str]]:
    out = []
    for line in text(raw).splitlines():
        queue, _, job_id = line.partition("/")
        if queue and job_id:
            out.append((queue, job_id))
    return out
