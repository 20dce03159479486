"""How one delivery ends: a typed outcome that knows its own ``ack.lua`` arguments.

The worker decides an outcome (``retry.decide`` for failures), queues it, and the next round
trip sends every queued outcome of a queue in one ``ack.lua`` call. The argument layout of
that script is written here and nowhere else, beside the ``Outcome`` values it accepts; the
script's header documents the same layout.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any, NamedTuple

log = logging.getLogger("kubeq.worker")


class Outcome(StrEnum):
    """The verbs ``ack.lua`` knows (its ``outcome`` argument)."""

    FINISHED = "finished"
    """The task returned: ``value`` is the result JSON."""
    RETRY = "retry"
    """The attempt failed and another is due at ``retry_due`` (counts an attempt)."""
    FAILED = "failed"
    """The job is dead-lettered with ``reason`` (counts an attempt)."""
    REQUEUE = "requeue"
    """Handed back unfinished by a draining worker: no attempt, no delivery counted."""
    RELEASE = "release"
    """Its process died under it: back to the queue without an attempt, but the delivery
    counts as lost, so a job that kills its process every time is buried as poison."""

    @property
    def metric_label(self) -> str:
        """The ``outcome`` label of kubeq_jobs_total."""
        return _LABELS.get(self) or self._value_


_LABELS = {Outcome.RETRY: "retried", Outcome.REQUEUE: "requeued", Outcome.RELEASE: "released"}


class Ended(StrEnum):
    """Ends a job can reach that ack.lua never records: their own script does (execution
    control, docs/architecture.md). Kept apart from ``Outcome``, the ack verbs."""

    ABORTED = "aborted"
    """abort.lua ends the job (``job.abort()``); the worker stops the attempt and counts it
    (``kubeq_jobs_total{outcome="aborted"}``)."""
    EXPIRED = "expired"
    """fetch.lua ends a job past its ``expires`` instead of delivering it."""
    SUSPENDED = "suspended"
    """Not an end of the job but of its run: the task slept or waited durably
    (kubeq.sleep, kubeq.wait_for) and suspend.lua recorded it, so the worker only frees
    the slot and sends nothing to ack.lua (docs/durable.md)."""

    @property
    def metric_label(self) -> str:
        """The ``outcome`` label of kubeq_jobs_total."""
        return self.value


class Settlement(NamedTuple):
    """The end of one delivery, as ``ack.lua`` records it (a NamedTuple: one per job, built
    in half a frozen dataclass's time)."""

    outcome: Outcome | Ended
    """An ack verb, or ``Ended.SUSPENDED`` (recorded already: never sent)."""
    value: bytes | str = b""
    """Result JSON (finished) or the error text (retry, failed, release)."""
    traceback: str = ""
    reason: str = ""
    """Why a failed job was dead-lettered (shown by ``kubeq dlq``)."""
    retry_delay_ms: int = 0
    """For RETRY: milliseconds from now (on the Redis server's clock)."""

    @classmethod
    def finished(cls, result_json: bytes) -> Settlement:
        return cls(Outcome.FINISHED, result_json)

    @classmethod
    def failed(cls, error: str, reason: str | None = None, traceback: str = "") -> Settlement:
        """Dead-letter with ``reason`` (the error itself when no reason is given)."""
        return cls(Outcome.FAILED, error, traceback, error if reason is None else reason)

    @classmethod
    def retry(cls, error: str, traceback: str, delay_seconds: float) -> Settlement:
        return cls(Outcome.RETRY, error, traceback, retry_delay_ms=int(delay_seconds * 1000))

    def ack_fields(self, job_id: str, lease: str) -> list[Any]:
        """This delivery's arguments of ack.lua: id, lease, outcome, value (4: a finished
        job's, the usual ack), then for any other outcome traceback, reason and retry due
        ("+ms" or "0") too (7)."""
        # _value_: the member's value without the enum's property lookup
        if self.outcome is Outcome.FINISHED:
            return [job_id, lease, "finished", self.value]
        due = f"+{self.retry_delay_ms}" if self.outcome is Outcome.RETRY else "0"
        return [job_id, lease, self.outcome._value_, self.value, self.traceback, self.reason, due]


ACK_FIELDS_FINISHED = 4
"""How many of ack.lua's arguments a finished delivery takes (``Settlement.ack_fields``)."""
ACK_FIELDS_OTHER = 7
"""How many of ack.lua's arguments any other delivery takes (``Settlement.ack_fields``)."""


class AckFlag:
    """What ack.lua answers per delivery."""

    APPLIED = 1
    STALE = 0
    """This delivery no longer holds the job (it lapsed and was delivered again, or the job
    ended otherwise): nothing changed."""
    UNKNOWN = -1
    """An outcome the script does not know: nothing changed."""
    MALFORMED = -2
    """The job's data in Redis was malformed: the job was dead-lettered with the reason."""
    ABORTED = 2
    """The job was aborted meanwhile: the aborted attempt's outcome is refused."""
    HANDOFF = 3
    """Applied, and the job's callback waits in the queue's handoff set (handoff.py)."""
    RECORDED = 4
    """This delivery's outcome was recorded already: a resend whose first reply was lost."""

    @staticmethod
    def report(job_id: str, applied: Any) -> bool:
        """Log what ack.lua answered for one job (or the error its call met); True when the
        job's callbacks wait for a hand-off."""
        if applied == AckFlag.HANDOFF:
            return True
        if isinstance(applied, Exception) or applied == AckFlag.UNKNOWN:
            # a script error, not an outage: resending would fail the same way; the lease
            # expires and the job is delivered again
            log.error("job %s: could not record its outcome: %s", job_id, applied)
        elif applied == AckFlag.ABORTED:
            log.info("job %s: it was aborted; this attempt's outcome is refused", job_id)
        elif applied == AckFlag.MALFORMED:
            log.error("job %s: its data in Redis was malformed; dead-lettered", job_id)
        elif applied == AckFlag.RECORDED:
            log.info("job %s: outcome recorded already (sent again after a lost reply)", job_id)
        elif applied == AckFlag.STALE:
            log.warning(
                "job %s: outcome refused: this worker no longer holds the job (its lease "
                "expired and it was delivered again, or it ended otherwise)",
                job_id,
            )
        return False
