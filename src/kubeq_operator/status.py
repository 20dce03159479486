"""The status book of one TaskQueue: its conditions, its numbers, and when to send them.

Kept apart from the loop (and from kopf and the API) so the rules of what a user sees in
``kubectl get tq -o yaml`` can be unit-tested: a condition's ``lastTransitionTime`` moves
only when its status flips; numbers alone are sent at most every ``STATUS_INTERVAL``
seconds; a growing ``oldestJobAgeSeconds`` alone never causes a patch. The loop asks
``to_send()`` for the status to patch, patches it, then calls ``sent()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kubeq.store.stats import QueueStats

STATUS_INTERVAL = 2.0
"""Numbers-only status updates are sent at most this often (conditions at once)."""
MESSAGE_LIMIT = 1000
"""Condition and Event messages are cut to this many characters."""
AGE = "oldestJobAgeSeconds"


class Condition(StrEnum):
    """The condition types of a TaskQueue's status."""

    READY = "Ready"
    """The workers serve the queues: the spec is valid, the Deployment exists, Redis answers."""
    SCALING = "Scaling"
    """The scaling policy acts (False: held, e.g. on a Redis error or an invalid spec)."""
    REDIS_REACHABLE = "RedisReachable"
    """The last read of the queues succeeded."""
    JOB_PODS_STARTED = "JobPodsStarted"
    """Job-mode pools only: no Job's pod is stuck before starting (False names one)."""


class Reason(StrEnum):
    """The operator's own reasons (the scaling policy's come from ``Decision.reason``)."""

    INVALID_SPEC = "InvalidSpec"
    DEPLOYMENT_CONFLICT = "DeploymentConflict"
    DEPLOYMENT_READY = "DeploymentReady"
    DEPLOYMENT_CREATED = "DeploymentCreated"
    WORKER_SPEC_CHANGED = "WorkerSpecChanged"
    OPERATOR_ERROR = "OperatorError"
    SERVING = "Serving"
    CONNECTED = "Connected"
    REDIS_REACHABLE = "RedisReachable"
    REDIS_UNREACHABLE = "RedisUnreachable"
    SECRET_NOT_FOUND = "SecretNotFound"
    SCALING_HELD = "ScalingHeld"
    SCHEDULE_ENQUEUED = "ScheduleEnqueued"


TRUE = "True"
FALSE = "False"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatusBook:
    """What the loop wants in a TaskQueue's ``status``, and what it last sent."""

    def __init__(self) -> None:
        self.generation: int | None = None
        self.conditions: dict[str, dict[str, Any]] = {}
        self.status: dict[str, Any] = {}
        self._sent: dict[str, Any] = {}
        self._sent_at = -1e9

    # -- conditions ----------------------------------------------------------------------

    def set(self, type_: Condition, status: str, reason: str, message: str) -> None:
        """Set one condition; its lastTransitionTime changes only when its status flips."""
        old = self.conditions.get(type_)
        changed = old is None or old["status"] != status
        since = now_iso() if changed or old is None else old["lastTransitionTime"]
        self.conditions[type_] = {
            "type": str(type_),
            "status": status,
            "reason": str(reason),
            "message": message[:MESSAGE_LIMIT],
            "lastTransitionTime": since,
            "observedGeneration": self.generation or 0,
        }

    def get(self, type_: Condition) -> dict[str, Any] | None:
        return self.conditions.get(type_)

    def reason(self, type_: Condition) -> str | None:
        c = self.conditions.get(type_)
        return None if c is None else str(c["reason"])

    def is_true(self, type_: Condition) -> bool:
        c = self.conditions.get(type_)
        return c is not None and c["status"] == TRUE

    def is_false(self, type_: Condition) -> bool:
        c = self.conditions.get(type_)
        return c is not None and c["status"] == FALSE

    # -- numbers -------------------------------------------------------------------------

    def record_queues(self, stats: Iterable[QueueStats]) -> None:
        """The queues' numbers as the status shows them (summed over the queues)."""
        stats = list(stats)
        workers: dict[str, int] = {}
        for s in stats:
            for w, n in s.workers.items():
                workers[w] = workers.get(w, 0) + n
        self.status.update(
            backlog=sum(s.backlog for s in stats),
            inFlight=sum(s.in_flight for s in stats),
            delayed=sum(s.delayed for s in stats),
            oldestJobAgeSeconds=round(max((s.oldest_ready_age for s in stats), default=0.0), 1),
            liveWorkers=len(workers),
            busyWorkers=sum(1 for n in workers.values() if n),
            rateLimited=any(s.rate_limited for s in stats),
            rateLimitedQueues=[s.queue for s in stats if s.rate_limited],
            expired=sum(s.expired for s in stats),
        )

    def record_readiness(self, replicas: int, has_deployment: bool, queues: Iterable[str]) -> None:
        """``replicas`` and the Ready condition, from RedisReachable and the Deployment."""
        self.status["replicas"] = replicas
        if self.is_true(Condition.REDIS_REACHABLE) and has_deployment:
            self.set(
                Condition.READY,
                TRUE,
                Reason.SERVING,
                f"{replicas} workers for queues {', '.join(queues)}",
            )
        elif self.is_false(Condition.REDIS_REACHABLE):
            c = self.conditions[Condition.REDIS_REACHABLE]
            self.set(Condition.READY, FALSE, c["reason"], c["message"])

    # -- sending -------------------------------------------------------------------------

    def to_send(self, now: float, force: bool = False) -> dict[str, Any] | None:
        """The status to patch now, or None when the last one sent is still good enough."""
        status = {**self.status, "conditions": list(self.conditions.values())}
        # the oldest job's age grows every second while anything waits: sent along with other
        # changes, it does not cause a patch (and a watch event) by itself
        if {**status, AGE: None} == {**self._sent, AGE: None}:
            return None
        unchanged = _shape(status) == _shape(self._sent)
        if not force and unchanged and now - self._sent_at < STATUS_INTERVAL:
            return None
        return status

    def sent(self, status: dict[str, Any], now: float) -> None:
        """Record that ``status`` (from ``to_send``) was patched at ``now``."""
        self._sent, self._sent_at = status, now


def _shape(s: dict[str, Any]) -> Any:
    """What must reach the API at once: conditions' states and the decision's fields."""
    return [(c["type"], c["status"], c["reason"]) for c in s.get("conditions", [])], {
        k: s.get(k) for k in ("desiredReplicas", "observedGeneration", "lastScaleTime")
    }
