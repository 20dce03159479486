"""A pure Python model of one queue's job states: what the Lua scripts should do, step by step.

Why: the scripts are the only place a job changes state, and each is a small program over
several keys. The state machine test (test_job_states.py) drives the real scripts on a real
redis-server and this model side by side, and compares them after every step. The model is
written from the scripts' documented contracts (their header comments and
docs/architecture.md), not from their code: where they disagree, one of the two is wrong.

Leases (docs/architecture.md, Guarantees): an expired lease lapses (queued, still held by its
token) until a fetch delivers the job again; the holder's heartbeat, outcome or own fetch
takes it back under the same token and delivery.

Nothing here talks to Redis. Time is not modelled: leases are long (a minute) and "expiry" is
a step of its own that moves one lease deadline into the past; retry delays are either 0 (due
at once) or an hour (not due during a test).

Dependencies (docs/architecture.md, Workflows): a child enqueued with
``depends_on`` waits ``deferred`` until each parent has been counted once; a parent that has
dependents (marker ``d``) notes a hand-off at every end (finished, dead-lettered, cancelled),
and the hand-off, a step of its own here as it is a worker's second step, resolves its
children with the status the parent has then (a parent requeued from the dead letters
before it is skipped: its next end notes it again). While an end waits for its hand-off the
id is not free for a new job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

QUEUED, SCHEDULED, ACTIVE, DEFERRED = "queued", "scheduled", "active", "deferred"
FINISHED, FAILED, CANCELLED = "finished", "failed", "cancelled"
LIVE = (QUEUED, SCHEDULED, ACTIVE, DEFERRED)


@dataclass
class MJob:
    id: str
    max_deliveries: int
    status: str = QUEUED
    attempts: int = 0
    deliveries: int = 0
    lease: str | None = None
    """The lease token of the current delivery while active or lapsed (None otherwise)."""
    lapsed: bool = False
    """Queued after its lease expired, still held by its token until delivered again."""
    worker: str | None = None
    """The worker of the last delivery."""
    recorded: str | None = None
    """The token whose outcome ended its delivery and left the job's lease field as it was
    (finished, retry, requeue): a resend of that outcome answers 4 until a new token."""
    expired: bool = False
    """Its lease deadline was moved into the past (the next fetch reclaims it)."""
    due_now: bool = True
    """For a scheduled job: due at once (retry without delay) or an hour from now."""
    result: bytes | None = None
    pending: int = 0
    """A deferred child: parents not counted yet."""
    counted: set[str] = field(default_factory=set)
    """A child: the parents already counted (each once, whatever its later ends)."""
    allow_failure: bool = False
    has_dependents: bool = False
    """The marker ``d``: a child registered on this job while it was live (kept for good)."""
    dependents: list[str] = field(default_factory=list)
    """Children waiting for this job's hand-off (its dependents set)."""


class Model:
    """One queue: every job ever enqueued, by id."""

    def __init__(self) -> None:
        self.jobs: dict[str, MJob] = {}
        self.tokens: set[str] = set()
        """Every lease token ever handed out: a token is never issued to two deliveries (a
        lapsed job taken back by the worker holding it keeps its token)."""
        self.handoff: set[str] = set()
        """Jobs whose end waits for its hand-off (the queue's handoff set)."""

    # -- the sets each status lives in --------------------------------------------------------

    def ids(self, status: str, *, due: bool | None = None) -> set[str]:
        return {
            j.id
            for j in self.jobs.values()
            if j.status == status and (due is None or j.due_now == due)
        }

    def sets(self) -> dict[str, set[str]]:
        """Where each job must be: ready, delayed, active or dead (finished and cancelled
        jobs are in none)."""
        return {
            "ready": self.ids(QUEUED),
            "delayed": self.ids(SCHEDULED),
            "active": self.ids(ACTIVE),
            "dead": self.ids(FAILED),
            "deferred": self.ids(DEFERRED),
        }

    def stats(self) -> dict[str, int]:
        """What stats.lua must report (due delayed jobs count as backlog)."""
        due = len(self.ids(SCHEDULED, due=True))
        return {
            "backlog": len(self.ids(QUEUED)) + due,
            "in_flight": len(self.ids(ACTIVE)),
            "delayed": len(self.ids(SCHEDULED)) - due,
            "dead": len(self.ids(FAILED)),
            "deferred": len(self.ids(DEFERRED)),
        }

    # -- steps --------------------------------------------------------------------------------

    def enqueue(self, job_id: str, max_deliveries: int, delayed: bool) -> bool:
        """False (nothing changes) while a live job has that id; an ended one is replaced."""
        old = self.jobs.get(job_id)
        if old is not None and (old.status in LIVE or job_id in self.handoff):
            return False
        job = MJob(job_id, max_deliveries)
        if delayed:
            job.status, job.due_now = SCHEDULED, False
        self.jobs[job_id] = job
        return True

    def before_pop(self) -> None:
        """What fetch.lua does before it pops: promote due retries, reclaim expired leases
        (again to the ready set, or buried as poison after max_deliveries lost deliveries)."""
        for job in self.jobs.values():
            if job.status == SCHEDULED and job.due_now:
                job.status = QUEUED
        for job in self.jobs.values():
            if job.status == ACTIVE and job.expired:
                job.expired = False
                lost = job.deliveries - job.attempts
                if lost >= job.max_deliveries:
                    job.status, job.lease = FAILED, None
                    self._ended(job)
                else:  # lapsed: still held by its token until delivered again
                    job.status, job.lapsed = QUEUED, True

    def deliver(self, job_id: str, token: str, worker: str) -> MJob:
        job = self.jobs[job_id]
        assert job.status == QUEUED, f"{job_id} delivered while {job.status}"
        if job.lapsed and job.worker == worker:
            # back to the worker holding its lease: the same token and delivery
            assert token == job.lease, f"{job_id} taken back under {token}, not {job.lease}"
        else:
            assert token not in self.tokens, f"lease token {token} issued twice"
            self.tokens.add(token)
            job.deliveries += 1
        job.status, job.lease, job.expired, job.lapsed = ACTIVE, token, False, False
        job.worker, job.recorded = worker, None
        return job

    def current(self, job_id: str, token: str) -> bool:
        """Whether ``token`` still holds the job: active under it, or lapsed under it."""
        job = self.jobs.get(job_id)
        return (
            job is not None
            and job.lease == token
            and (job.status == ACTIVE or (job.status == QUEUED and job.lapsed))
        )

    def _take_back(self, job: MJob) -> None:
        if job.lapsed:
            job.status, job.lapsed = ACTIVE, False

    def heartbeat(self, owned: list[tuple[str, str]]) -> set[str]:
        """Renew what is still ours (taking a lapsed job back); answer the ids that are not
        (delivered again or ended)."""
        lost = set()
        for job_id, token in owned:
            if self.current(job_id, token):
                self._take_back(self.jobs[job_id])
                self.jobs[job_id].expired = False
            else:
                lost.add(job_id)
        return lost

    def ack(self, job_id: str, token: str, outcome: str, result: bytes, far: bool) -> int:
        """ack.lua's flag: 1 applied, 0 stale (a superseded lease: nothing changes), 3 applied
        and the job's end waits for its hand-off (it has dependents), 4 this token's outcome
        was recorded already (a resend: nothing changes)."""
        if not self.current(job_id, token):
            job = self.jobs.get(job_id)
            return 4 if job is not None and job.recorded == token else 0
        job = self.jobs[job_id]
        self._take_back(job)
        job.lease, job.expired = None, False
        # 'failed' and 'release' move the lease field on (a resend of those answers 0)
        job.recorded = token if outcome in ("finished", "retry", "requeue") else None
        if outcome == "finished":
            job.attempts += 1
            job.status, job.result = FINISHED, result
        elif outcome == "retry":
            job.attempts += 1
            job.status, job.due_now = SCHEDULED, not far
        elif outcome == "failed":
            job.attempts += 1
            job.status = FAILED
        elif outcome == "release":
            lost = job.deliveries - job.attempts
            job.status = FAILED if lost >= job.max_deliveries else QUEUED
        elif outcome == "requeue":
            job.deliveries -= 1
            job.status = QUEUED
        else:
            raise AssertionError(f"unknown outcome {outcome}")
        if job.status in (FINISHED, FAILED) and self._ended(job):
            return 3
        return 1

    def _ended(self, job: MJob) -> bool:
        """The script that ends a job notes its hand-off when it has dependents."""
        if job.has_dependents:
            self.handoff.add(job.id)
        return job.has_dependents

    def cancel(self, job_id: str) -> bool:
        job = self.jobs[job_id]
        if job.status not in (QUEUED, SCHEDULED, DEFERRED) or job.lapsed:
            return False
        job.status = CANCELLED
        self._ended(job)
        return True

    # -- dependencies ---------------------------------------------------------------------------

    def enqueue_child(
        self, child_id: str, parents: list[str], allow_failure: bool, max_deliveries: int
    ) -> bool:
        """False (nothing changes: the caller gets an error) when the child's id exists. Else the
        child waits deferred; each parent still live registers it (and gets the marker), each
        parent already ended is resolved at once, in the parents' order."""
        if child_id in self.jobs:
            return False
        child = MJob(child_id, max_deliveries, status=DEFERRED, pending=len(parents))
        child.allow_failure = allow_failure
        self.jobs[child_id] = child
        ended = []
        for pid in parents:
            parent = self.jobs[pid]
            if parent.status in LIVE:
                parent.has_dependents = True
                parent.dependents.append(child_id)
            else:
                ended.append((pid, parent.status))
        for pid, status in ended:
            self.resolve(child_id, pid, status)
        return True

    def resolve(self, child_id: str, parent_id: str, status: str) -> None:
        """resolve.lua: count each parent once; a parent that did not finish cancels the child
        (unless allow_failure); the last one makes it ready."""
        child = self.jobs[child_id]
        if child.status != DEFERRED or parent_id in child.counted:
            return
        child.counted.add(parent_id)
        if status != FINISHED and not child.allow_failure:
            child.status = CANCELLED
            self._ended(child)
            return
        child.pending -= 1
        if child.pending <= 0:
            child.status = QUEUED

    def hand_off(self, job_id: str) -> None:
        """A worker's second step for an ended job: resolve its children with its status now
        (a job live again is skipped), then forget the entry and the edges."""
        self.handoff.discard(job_id)
        job = self.jobs[job_id]
        if job.status in LIVE:
            return
        children, job.dependents = job.dependents, []
        for child in children:
            self.resolve(child, job_id, job.status)

    def requeue_dead(self, job_id: str) -> int:
        job = self.jobs.get(job_id)
        if job is None or job.status != FAILED:
            return 0
        job.status, job.attempts, job.deliveries = QUEUED, 0, 0
        return 1
