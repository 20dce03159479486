"""``depends_on=``: a job that waits (``deferred``) until its parents, on any queues, end.

An edge between a parent on queue A and a child on queue C never needs a script spanning two
hash slots (docs/architecture.md, Workflows). The caller checks the parents exist and the
child is new (so no cycle can form), records in C the parents it is about to link the child
to (``links.lua``), enqueues the child ``deferred`` with a count of parents (``enqueue.lua``),
then registers each edge on the parent's side (``depend.lua``: the parent's end will hand it
off), resolves at once the parents already ended (``resolve.lua`` on C) and forgets the
record. A caller that dies before the end leaves the record, and a worker of C redoes the
link from it (``handoff.sweep``): every step is idempotent. When a parent ends, the script
that ends it notes a hand-off (``note_end``) and a worker runs ``resolve.lua`` on each
child's queue (``handoff.py``). Each parent counts once per child (``HSETNX``), so a child
is released exactly once, by its last parent, whoever runs the step and however often. A
chord's callback is linked with ``results``: each member's result is kept in the callback's
own hash when it resolves it (``chords.py`` reads them there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubeq import defaults, serialization
from kubeq.errors import JobNotFound
from kubeq.options import Call
from kubeq.store.jobfields import text
from kubeq.store.keys import QueueKeys, validate_job_id, validate_queue_name
from kubeq.store.scripts import LUA, ScriptCall, run_pipeline, run_pipeline_async
from kubeq.workflows.edges import edge_call, entry

__all__ = [
    "after_link",
    "check",
    "distinct",
    "link",
    "link_calls",
    "parents_of",
    "read_record",
    "record_calls",
    "relink",
    "resolve_calls",
]

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


def check(
    client: Any, prefix: str, child: Edge, parents: Sequence[Edge], *, parents_exist: bool = True
) -> None:
    """Refuse, before anything is enqueued, an unknown parent or a child id that exists (a
    child must be new, so it can be no one's parent yet and no cycle can form).
    ``parents_exist=False``: the parents are enqueued with the child (a chord's members)."""
    if child in parents:
        raise ValueError(f"job {child[1]} cannot depend on itself (a cycle)")
    pipe = client.pipeline(transaction=False)
    for queue, job_id in [*(parents if parents_exist else ()), child]:
        pipe.exists(QueueKeys.of(queue, prefix).job(job_id))
    *found, child_exists = pipe.execute()
    if not parents_exist:
        found = [1] * len(parents)
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


def resolve_calls(
    prefix: str, child: Edge, parent: Edge, status: str, result: bytes | None = None
) -> ScriptCall:
    """The resolve.lua call telling child that parent ended with ``status`` (and, for a
    chord's callback, the parent's result, which the callback keeps)."""
    keys = QueueKeys.of(child[0], prefix)
    args: list[Any] = [keys.base, child[1], "/".join(parent), status]
    if result is not None:
        args.append(result)
    return (LUA["resolve"], keys.script_keys, args)


def record_calls(
    prefix: str, children: Sequence[tuple[Edge, Sequence[Edge], bool]]
) -> list[ScriptCall]:
    """The links.lua calls that record, in each child's queue, the parents its caller is
    about to link it to (``results``: a chord's callback, which keeps their results), so a
    worker redoes the link if the caller dies before it is done (``handoff.sweep``)."""
    by_queue: dict[str, list[Any]] = {}
    for (queue, job_id), parents, results in children:
        record = serialization.dumps({"p": [list(p) for p in parents], "r": results})
        by_queue.setdefault(queue, []).extend([job_id, record])
    calls: list[ScriptCall] = []
    for queue, args in by_queue.items():
        keys = QueueKeys.of(queue, prefix)
        calls.append((LUA["links"], [keys.linking], [keys.base, "add", *args]))
    return calls


def read_record(raw: bytes | str | None) -> tuple[list[Edge], bool] | None:
    """The parents and the results flag of a link record; None when it cannot be one."""
    try:
        data = serialization.loads(raw or b"")
        parents = [(validate_queue_name(q), validate_job_id(i)) for q, i in data["p"]]
        return parents, bool(data.get("r"))
    except (ValueError, TypeError, KeyError):
        return None


def link_calls(
    prefix: str, child: Edge, parents: Sequence[Edge], results: bool
) -> list[ScriptCall]:
    """The first round trip of a link: register each edge on its parent's side (depend.lua,
    idempotent), and list the parents on the child for people."""
    member = "\t".join(child) + ("\tr" if results else "")
    calls: list[ScriptCall] = []
    for queue, job_id in parents:
        keys = QueueKeys.of(queue, prefix)
        args = [keys.base, job_id, member, defaults.WORKFLOW_EDGES_KEPT, "r" if results else ""]
        calls.append((LUA["depend"], [keys.job(job_id)], args))
    # the child lists its parents for people (kubeq job ID): a view beside the mechanism
    listed = [entry(*p) for p in parents]
    calls.append(edge_call(QueueKeys.of(child[0], prefix), child[1], "parents", listed))
    return calls


def after_link(
    prefix: str, child: Edge, parents: Sequence[Edge], replies: Sequence[Any]
) -> list[ScriptCall]:
    """The second round trip: resolve the child for each parent that had already ended (with
    its result for a chord), then forget the link record."""
    calls = []
    for parent, reply in zip(parents, replies, strict=False):
        raw, result = (reply[0], reply[1]) if isinstance(reply, list) else (reply, None)
        status = text(raw)  # a chord's parent answers [status, result]
        if status != "pending":
            calls.append(resolve_calls(prefix, child, parent, status, result))
    keys = QueueKeys.of(child[0], prefix)
    calls.append((LUA["links"], [keys.linking], [keys.base, "done", child[1]]))
    return calls


def link(
    client: Any, prefix: str, child: Edge, parents: Sequence[Edge], results: bool = False
) -> None:
    """Register each edge on its parent's side; resolve at once those already ended; then
    forget the child's link record (two round trips)."""
    replies = run_pipeline(client, link_calls(prefix, child, parents, results))
    run_pipeline(client, after_link(prefix, child, parents, replies[: len(parents)]))


async def relink(
    client: Any, prefix: str, child: Edge, parents: Sequence[Edge], results: bool
) -> None:
    """``link`` for a worker redoing the link of a child whose caller died."""
    replies = await run_pipeline_async(client, link_calls(prefix, child, parents, results))
    await run_pipeline_async(client, after_link(prefix, child, parents, replies[: len(parents)]))
