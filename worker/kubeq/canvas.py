"""``kubeq.chain``: Celery's chain on kubeq's callbacks, with a handle on the whole workflow.

A chain ``chain(a.s(1), b.s(), c.s())`` is one enqueue of ``a`` whose ``on_success`` is ``b``
whose ``on_success`` is ``c``: each result becomes the next link's first argument (``.si()``
links take none), and each link is handed off by the worker that ended the one before
(``handoff.py``), so links may live on different queues and a crash between two links
loses nothing. Each link's job id is derived from the one before (``callbacks.callback_id``),
so the handle knows every job of the chain from the first id alone, before they exist.
``cancel()`` cancels the links not started and leaves tombstones (``cancel.lua``) for the
ones not enqueued yet, which their hand-off then finds: nothing not started starts after it.
Groups and chords are not built yet (docs/workflows.md says what is missing).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import defaults
from .callbacks import callback_id
from .enqueue import new_job_id
from .errors import JobNotFound, ResultTimeout
from .jobs import Job, Status
from .keys import QueueKeys
from .options import Call

if TYPE_CHECKING:
    from .app import App

__all__ = ["Chain", "ChainResult", "chain"]


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
        app = app or self.links[0].app
        if app is None:
            raise ValueError(
                "chain.delay(app): the first signature was not made by a Task.s() of an App; "
                "pass the App to enqueue through"
            )
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
            queue = link.queue or app.defaults_for(link.task).queue
            jobs.append(Job(app, queue, callback_id(jobs[-1].id, "on_success")))
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
