"""``depends_on=``: a job that waits (``deferred``) until its parents, on any queues, end.

An edge between a parent on queue A and a child on queue C never needs a script spanning two
hash slots (docs/architecture.md, Workflows). The caller checks the parents exist and the
child is new (so no cycle can form), enqueues the child ``deferred`` with a count of parents
(``enqueue.lua``), then registers each edge on the parent's side (``depend.lua``: the parent's
end will hand it off). A parent that has already ended is resolved at once by the caller
(``resolve.lua`` on C). When a parent ends, the script that ends it notes a hand-off
(``note_end``) and a worker runs ``resolve.lua`` on each child's queue (``handoff.py``). Each
parent counts once per child (``HSETNX``), so a child is released exactly once, by its last
parent, whoever runs the step and however often.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubeq import defaults
from kubeq.errors import JobNotFound
from kubeq.options import Call
from kubeq.store.jobfields import text
from kubeq.store.keys import QueueKeys, validate_job_id
from kubeq.store.scripts import LUA, ScriptCall, run_pipeline
from kubeq.workflows.edges import edge_call, entry

__all__ = ["check", "distinct", "link", "parents_of", "resolve_calls"]

Edge = tuple[str, str]
"""(queue, job id)"""


def parents_of(call: Call, default_queue: str) -> list[Edge]:
    """The call's parents as (queue, id), each once in first-named order, or an error naming
    the bad one. Linear: a chord of thousands of members names thousands of parents."""
    return list(_firsts(call, default_queue))


def distinct(call: Call, default_queue: str) -> Call:
    """The call with each parent named once (by its first name: ``[a, a.id]`` is one
    parent), so the child's count of parents to wait for (``pending``) is its number of
    edges; a parent counted twice would keep the child deferred for ever."""
    firsts = _firsts(call, default_queue)
    if len(firsts) == len(call.depends_on or ()):
        return call
    return call.set(depends_on=list(firsts.values()))


def _firsts(call: Call, default_queue: str) -> dict[Edge, Any]:
    """Each parent's edge, with the first name the call gave it."""
    out: dict[Edge, Any] = {}
    for parent in call.depends_on or ():
        queue = getattr(parent, "queue", None)
        job_id = getattr(parent, "id", None)
        if isinstance(parent, str):
            queue, job_id = default_queue, parent
        if not isinstance(queue, str) or not isinstance(job_id, str):
            raise TypeError(
                f"task {call.task!r}: depends_on takes Job handles (from .delay()) or job ids, "
                f"got {parent!r}"
            )
        out.setdefault((queue, validate_job_id(job_id)), parent)
    return out


def check(client: Any, prefix: str, child: Edge, parents: Sequence[Edge]) -> None:
    """Refuse, before anything is enqueued, an unknown parent or a child id that exists (a
    child must be new, so it can be no one's parent yet and no cycle can form)."""
    if child in parents:
        raise ValueError(f"job {child[1]} cannot depend on itself (a cycle)")
    pipe = client.pipeline(transaction=False)
    for queue, job_id in [*parents, child]:
        pipe.exists(QueueKeys.of(queue, prefix).job(job_id))
    *found, child_exists = pipe.execute()
    missing = [f"{q}/{i}" for (q, i), ok in zip(parents, found, strict=True) if not ok]
    if missing:
        raise JobNotFound(
            f"depends_on names jobs that do not exist (or expired): {', '.join(missing)}; "
            "nothing was enqueued"
        )
    if child_exists:
        raise ValueError(
            f"job_id {child[1]!r} already exists: a job with depends_on must be new (else it "
            "could close a cycle); nothing was enqueued"
        )


def resolve_calls(prefix: str, child: Edge, parent: Edge, status: str) -> ScriptCall:
    """The resolve.lua call telling child that parent ended with ``status``."""
    keys = QueueKeys.of(child[0], prefix)
    return (LUA["resolve"], keys.script_keys, [keys.base, child[1], "/".join(parent), status])


def link(client: Any, prefix: str, child: Edge, parents: Sequence[Edge]) -> None:
    """Register each edge on its parent's side; resolve at once those already ended."""
    calls: list[ScriptCall] = []
    for queue, job_id in parents:
        keys = QueueKeys.of(queue, prefix)
        args = [keys.base, job_id, "\t".join(child), defaults.WORKFLOW_EDGES_KEPT]
        calls.append((LUA["depend"], [keys.job(job_id)], args))
    # the child lists its parents for people (kubeq job ID): a view beside the mechanism
    listed = [entry(*p) for p in parents]
    calls.append(edge_call(QueueKeys.of(child[0], prefix), child[1], "parents", listed))
    *statuses, _ = run_pipeline(client, calls)
    ended = [
        resolve_calls(prefix, child, parent, text(status))
        for parent, status in zip(parents, statuses, strict=True)
        if text(status) != "pending"
    ]
    if ended:
        run_pipeline(client, ended)
