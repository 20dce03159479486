"""A pure Python model of one queue's job states: what the Lua scripts should do, step by step.

Why: the scripts are the only place a job changes state, and each is a small program over
several keys. The state machine test (test_job_states.py) drives the real scripts on a real
redis-server and this model side by side, and compares them after every step. The model is
written from the scripts' documented contracts (their header comments and
docs/architecture.md), not from their code: where they disagree, one of the two is wrong.

Nothing here talks to Redis. Time is not modelled: leases are long (a minute) and "expiry" is
a step of its own that moves one lease deadline into the past; retry delays are either 0 (due
at once) or an hour (not due during a test).
"""

from __future__ import annotations

from dataclasses import dataclass

QUEUED, SCHEDULED, ACTIVE = "queued", "scheduled", "active"
FINISHED, FAILED, CANCELLED = "finished", "failed", "cancelled"
LIVE = (QUEUED, SCHEDULED, ACTIVE)


@dataclass
class MJob:
    id: str
    max_deliveries: int
    status: str = QUEUED
    attempts: int = 0
    deliveries: int = 0
    lease: str | None = None
    """The lease token of the current delivery while active (None otherwise)."""
    expired: bool = False
    """Its lease deadline was moved into the past (the next fetch reclaims it)."""
    due_now: bool = True
    """For a scheduled job: due at once (retry without delay) or an hour from now."""
    result: bytes | None = None


class Model:
    """One queue: every job ever enqueued, by id."""

    def __init__(self) -> None:
        self.jobs: dict[str, MJob] = {}
        self.tokens: set[str] = set()
        """Every lease token ever handed out: a token is never issued twice."""

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
        }

    def stats(self) -> dict[str, int]:
        """What stats.lua must report (due delayed jobs count as backlog)."""
        due = len(self.ids(SCHEDULED, due=True))
        return {
            "backlog": len(self.ids(QUEUED)) + due,
            "in_flight": len(self.ids(ACTIVE)),
            "delayed": len(self.ids(SCHEDULED)) - due,
            "dead": len(self.ids(FAILED)),
        }

    # -- steps --------------------------------------------------------------------------------

    def enqueue(self, job_id: str, max_deliveries: int, delayed: bool) -> bool:
        """False (nothing changes) while a live job has that id; an ended one is replaced."""
        old = self.jobs.get(job_id)
        if old is not None and old.status in LIVE:
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
                job.lease = None
                lost = job.deliveries - job.attempts
                job.status = FAILED if lost >= job.max_deliveries else QUEUED

    def deliver(self, job_id: str, token: str) -> MJob:
        job = self.jobs[job_id]
        assert job.status == QUEUED, f"{job_id} delivered while {job.status}"
        assert token not in self.tokens, f"lease token {token} issued twice"
        self.tokens.add(token)
        job.status, job.lease, job.expired = ACTIVE, token, False
        job.deliveries += 1
        return job

    def current(self, job_id: str, token: str) -> bool:
        job = self.jobs.get(job_id)
        return job is not None and job.status == ACTIVE and job.lease == token

    def heartbeat(self, owned: list[tuple[str, str]]) -> set[str]:
        """Renew what is still ours; answer the ids that are not (taken over or ended)."""
        lost = set()
        for job_id, token in owned:
            if self.current(job_id, token):
                self.jobs[job_id].expired = False
            else:
                lost.add(job_id)
        return lost

    def ack(self, job_id: str, token: str, outcome: str, result: bytes, far: bool) -> int:
        """ack.lua's flag: 1 applied, 0 stale (a superseded lease: nothing changes)."""
        if not self.current(job_id, token):
            return 0
        job = self.jobs[job_id]
        job.lease, job.expired = None, False
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
        return 1

    def cancel(self, job_id: str) -> bool:
        job = self.jobs[job_id]
        if job.status not in (QUEUED, SCHEDULED):
            return False
        job.status = CANCELLED
        return True

    def requeue_dead(self, job_id: str) -> int:
        job = self.jobs.get(job_id)
        if job is None or job.status != FAILED:
            return 0
        job.status, job.attempts, job.deliveries = QUEUED, 0, 0
        return 1
