"""``kubeq.chain``: Celery's chain on kubeq's callbacks, with a handle on the whole workflow.

A chain ``chain(a.s(1), b.s(), c.s())`` is one enqueue of ``a`` whose ``on_success`` is ``b``
whose ``on_success`` is ``c``: each result becomes the next link's first argument (``.si()``
links take none), and each link is handed off by the worker that ended the one before
(``handoff.py``), so links may live on different queues and a crash between two links
loses nothing. Each link's job id is derived from the one before (``callbacks.callback_id``),
so the handle knows every job of the chain from the first id alone, before they exist (and,
on a partitioned queue, its partition: the hand-off routes the link as an enqueue would).
``cancel()`` cancels the links not started and leaves tombstones (``cancel.lua``) for the
ones not enqueued yet, which their hand-off then finds: nothing not started starts after it.
A group is one ``enqueue_many``; a chord is a group plus its callback enqueued with
``depends_on`` on every member (released exactly once, by the last member: resolve.lua) and
``chord_of``, from which the worker reads the members' results and passes them, in order,
as the callback's first argument (``chord_results``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kubeq import defaults
from kubeq.client.jobs import Job
from kubeq.errors import JobNotFound, ResultTimeout
from kubeq.options import Call
from kubeq.store.ids import new_job_id
from kubeq.store.jobfields import Status
from kubeq.store.keys import QueueKeys
from kubeq.workflows import dependencies
from kubeq.workflows.callbacks import callback_id

if TYPE_CHECKING:
    from kubeq.client.app import App

__all__ = [
    "Chain",
    "ChainResult",
    "Chord",
    "ChordResult",
    "Group",
    "GroupResult",
    "chain",
    "chord",
    "group",
]


class Chain:
    """Signatures run one after the other, each result passed to the next."""

    def __init__(self, *links: Call) -> None:
        if not links:
            raise ValueError("chain() needs at least one signature, e.g. chain(a.s(1), b.s())")
        for i, link in enumerate(links):
            if not isinstance(link, Call):
                raise TypeError(
                    f"chain link {i} must be a task signature such as task.s(...), got {link!r}"
                )
            if i < len(links) - 1 and link.on_success is not None:
                raise ValueError(
                    f"chain link {i} ({link.task}) already has on_success: a chain passes each "
                    "link's result to the next one; put the callback on the last link"
                )
        self.links = links

    def signature(self) -> Call:
        """The first link, carrying the rest as nested ``on_success`` callbacks."""
        nested = self.links[-1]
        for link in reversed(self.links[:-1]):
            nested = link.set(on_success=nested)
        return nested

    def delay(self, app: App | None = None) -> ChainResult:
        """Enqueue the first link (the others follow as each one finishes) through ``app``,
        by default the App whose task made the first signature."""
        app = _app_of(app, self.links[0])
        first = self.signature()
        if first.job_id is None:
            first = first.set(job_id=new_job_id())
        (job,) = app.enqueue_many([first])
        return ChainResult(app, job, self.links)


def chain(*links: Call) -> Chain:
    """``kubeq.chain(a.s(1), b.s(), c.s()).delay()``: a(1), then b(result of a), then c(...)."""
    return Chain(*links)


class ChainResult:
    """A handle on an enqueued chain: ``.id`` (its first job's), ``.jobs``, ``.status()``,
    ``.result(timeout=)`` (the last link's result), ``.cancel()``."""

    def __init__(self, app: App, first: Job, links: tuple[Call, ...]) -> None:
        self.app = app
        self.id = first.id
        jobs = [first]
        for link in links[1:]:
            options = app.defaults_for(link.task)
            job_id = callback_id(jobs[-1].id, "on_success")
            # on a partitioned queue, the partition the hand-off will choose for this id
            queue = app.partitioner.route(
                link.queue or options.queue, link.set(job_id=job_id), options
            )
            jobs.append(Job(app, queue, job_id))
        self.jobs = jobs

    def __repr__(self) -> str:
        return f"<ChainResult {self.id} links={len(self.jobs)}>"

    def status(self) -> Status:
        """finished when every link has; else the status of the first link that has not
        finished (``queued`` for a link its parent has not handed off yet)."""
        for job in self.jobs:
            status = job.status()
            if status != "finished":
                return "queued" if status == "unknown" else status
        return "finished"

    def result(self, timeout: float | None = None) -> Any:
        """Wait for every link and return the last one's result; raises what a failed link's
        ``job.result()`` raises (JobFailed, JobCancelled...), or ResultTimeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        value: Any = None
        for job in self.jobs:
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise ResultTimeout(f"chain {self.id} did not end within {timeout} s")
                try:
                    value = job.result(timeout=left)
                    break
                except JobNotFound:
                    # its parent finished and the hand-off is under way
                    time.sleep(0.02)
        return value

    def cancel(self) -> int:
        """Cancel every link that has not started, including those not enqueued yet (they
        never will be); a running link finishes, and nothing after it starts. Returns how
        many links were cancelled."""
        cancelled = 0
        for job in self.jobs:
            keys = QueueKeys.of(job.queue, self.app.prefix)
            found = self.app.scripts.cancel(
                keys=keys.script_keys, args=[keys.base, job.id, defaults.RESULT_TTL]
            )
            cancelled += int(found == 1)
        return cancelled


class Group:
    """Signatures run in parallel (``kubeq.group([a.s(1), a.s(2)])``)."""

    def __init__(self, sigs: Iterable[Call]) -> None:
        self.sigs = tuple(sigs)
        if not self.sigs:
            raise ValueError("group() needs at least one signature: a group of 0 runs nothing")
        for i, sig in enumerate(self.sigs):
            if not isinstance(sig, Call):
                raise TypeError(
                    f"group member {i} must be a task signature such as task.s(...), got {sig!r}"
                )

    def delay(self, app: App | None = None) -> GroupResult:
        """Enqueue every member in one round trip."""
        app = _app_of(app, self.sigs[0])
        return GroupResult(app.enqueue_many(self.sigs))


def group(sigs: Iterable[Call]) -> Group:
    """``kubeq.group([resize.s(p, 64), resize.s(p, 256)]).delay()``: run them in parallel."""
    return Group(sigs)


class GroupResult:
    """A handle on an enqueued group: ``.jobs``, ``.status()``, ``.results(timeout=)``,
    ``.cancel()``."""

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs
        self.id = jobs[0].id

    def status(self) -> Status:
        """finished when every member has; else the first member's status that has not."""
        for job in self.jobs:
            status = job.status()
            if status != "finished":
                return status
        return "finished"

    def results(self, timeout: float | None = None) -> list[Any]:
        """Every member's result, in the group's order; raises what a failed member's
        ``job.result()`` raises, or ResultTimeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out = []
        for job in self.jobs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            out.append(job.result(timeout=left))
        return out

    def cancel(self) -> int:
        """Cancel the members that have not started; returns how many."""
        return sum(1 for job in self.jobs if job.cancel())


class Chord:
    """A group, then one callback with the list of the members' results."""

    def __init__(self, header: Group | Iterable[Call], body: Call) -> None:
        self.header = header if isinstance(header, Group) else Group(header)
        if not isinstance(body, Call):
            raise TypeError(f"chord's callback must be a task signature, got {body!r}")
        self.body = body

    def delay(self, app: App | None = None) -> ChordResult:
        """Enqueue the callback ``deferred`` on the members (``depends_on``) and the members,
        all checked first: a refused callback (an argument JSON refuses, a bad option, an id
        that exists) leaves nothing enqueued. Then the edges are linked; a worker redoes the
        link if this caller dies first."""
        app = _app_of(app, self.header.sigs[0])
        sigs = [s if s.job_id else s.set(job_id=new_job_id()) for s in self.header.sigs]
        if app.eager is not None:
            members = app.enqueue_many(sigs)
            chord_of = [[job.queue, job.id] for job in members]
            (callback,) = app.enqueue_many([self.body.set(depends_on=members, chord_of=chord_of)])
            return ChordResult(GroupResult(members), callback)
        targets = app._plan(sigs, None).targets  # the members' queues (partitions)
        body = self.body.set(
            job_id=self.body.job_id or new_job_id(),
            depends_on=[Job(app, queue, job_id) for queue, job_id in targets],
            chord_of=[list(t) for t in targets],
        )
        body = dependencies.distinct(body, app.default_queue)
        plan = app._plan([body, *sigs], None)  # every call checked before anything is sent
        child = plan.targets[0]
        parents = dependencies.parents_of(body, app.default_queue)
        dependencies.check(app.redis, app.prefix, child, parents, parents_exist=False)
        callback, *members = app.send_deferred(plan, [(child, parents, True)])
        return ChordResult(GroupResult(members), callback)


def chord(header: Group | Iterable[Call], body: Call) -> Chord:
    """``kubeq.chord(group, notify.s()).delay()``: ``notify([results...])`` once, when every
    member has finished (a failed member cancels it)."""
    return Chord(header, body)


class ChordResult:
    """A handle on an enqueued chord: ``.id`` (the callback's), ``.group``, ``.callback``,
    ``.status()``, ``.result(timeout=)`` (the callback's), ``.cancel()``."""

    def __init__(self, members: GroupResult, callback: Job) -> None:
        self.group = members
        self.callback = callback
        self.id = callback.id

    def status(self) -> Status:
        return self.callback.status()

    def result(self, timeout: float | None = None) -> Any:
        return self.callback.result(timeout=timeout)

    def cancel(self) -> int:
        """Cancel the members not started and the callback (if it has not started)."""
        return self.group.cancel() + int(self.callback.cancel())


def _app_of(app: App | None, first: Call) -> App:
    found = app or first.app
    if found is None:
        raise ValueError(
            "the first signature was not made by a Task.s() of an App; pass the App to .delay(app)"
        )
    return found
