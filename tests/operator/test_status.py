"""The status book: what `kubectl get tq -o yaml` shows, and when the operator patches it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from kubeq.store.stats import QueueStats
from kubeq_operator import status as status_mod
from kubeq_operator.status import (
    AGE,
    FALSE,
    STATUS_INTERVAL,
    TRUE,
    Condition,
    Reason,
    StatusBook,
)


def qs(queue: str, backlog: int = 0, in_flight: int = 0, **kw: Any) -> QueueStats:
    base = QueueStats(queue, 1000.0, backlog, in_flight, 0, 0, 0.0, False)
    return replace(base, **kw)


def test_condition_transition_time_moves_only_when_the_status_flips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter(["2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z", "2026-01-01T00:00:09Z"])
    monkeypatch.setattr(status_mod, "now_iso", lambda: next(clock))
    book = StatusBook()
    book.generation = 3
    book.set(Condition.READY, FALSE, Reason.INVALID_SPEC, "spec.queues: bad")
    first = book.get(Condition.READY)
    assert first is not None
    assert first["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert first["observedGeneration"] == 3
    # same status, another reason: the transition time stays
    book.set(Condition.READY, FALSE, Reason.DEPLOYMENT_CONFLICT, "taken")
    second = book.get(Condition.READY)
    assert second is not None
    assert second["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert (second["reason"], second["message"]) == ("DeploymentConflict", "taken")
    # the status flips: it moves
    book.set(Condition.READY, TRUE, Reason.SERVING, "1 worker")
    third = book.get(Condition.READY)
    assert third is not None
    assert third["lastTransitionTime"] == "2026-01-01T00:00:05Z"
    assert book.is_true(Condition.READY)
    assert not book.is_false(Condition.READY)
    assert book.reason(Condition.SCALING) is None


def test_condition_names_are_the_api_strings() -> None:
    book = StatusBook()
    book.set(Condition.REDIS_REACHABLE, TRUE, Reason.CONNECTED, "x" * 5000)
    c = book.get(Condition.REDIS_REACHABLE)
    assert c is not None
    assert (c["type"], c["reason"]) == ("RedisReachable", "Connected")
    assert type(c["type"]) is str and type(c["reason"]) is str  # serialisable as plain JSON
    assert len(c["message"]) == status_mod.MESSAGE_LIMIT


def test_numbers_sum_over_queues_and_workers_are_counted_once() -> None:
    book = StatusBook()
    book.record_queues(
        [
            qs("a", backlog=3, in_flight=2, delayed=1, oldest_ready_age=4.26, workers={"p:1": 2}),
            qs(
                "b",
                backlog=5,
                oldest_ready_age=9.04,
                workers={"p:1": 0, "q:1": 0},
                rate_limited=True,
                expired=3,
            ),
        ]
    )
    assert book.status == {
        "backlog": 8,
        "inFlight": 2,
        "delayed": 1,
        "oldestJobAgeSeconds": 9.0,
        "liveWorkers": 2,
        "busyWorkers": 1,
        "rateLimited": True,
        "rateLimitedQueues": ["b"],
        "expired": 3,
    }


def test_ready_follows_redis_and_the_deployment() -> None:
    book = StatusBook()
    book.record_readiness(0, has_deployment=True, queues=["a"])
    assert book.get(Condition.READY) is None  # nothing known yet: nothing claimed
    book.set(Condition.REDIS_REACHABLE, FALSE, Reason.REDIS_UNREACHABLE, "cannot read")
    book.record_readiness(2, has_deployment=True, queues=["a"])
    ready = book.get(Condition.READY)
    assert ready is not None
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "RedisUnreachable",
        "cannot read",
    )
    book.set(Condition.REDIS_REACHABLE, TRUE, Reason.CONNECTED, "read 2 queues")
    book.record_readiness(2, has_deployment=False, queues=["a", "b"])
    assert book.is_false(Condition.READY)  # no Deployment yet: not serving
    book.record_readiness(2, has_deployment=True, queues=["a", "b"])
    ready = book.get(Condition.READY)
    assert ready is not None
    assert (ready["status"], ready["message"]) == ("True", "2 workers for queues a, b")
    assert book.status["replicas"] == 2


def test_when_the_status_is_sent() -> None:
    book = StatusBook()
    book.set(Condition.READY, TRUE, Reason.SERVING, "1 worker")
    book.status.update(backlog=1, desiredReplicas=1)
    first = book.to_send(100.0)
    assert first is not None and first["conditions"][0]["type"] == "Ready"
    book.sent(first, 100.0)
    assert book.to_send(100.5) is None  # nothing changed

    # numbers alone: at most every STATUS_INTERVAL seconds (unless forced)
    book.status["backlog"] = 7
    assert book.to_send(100.5) is None
    assert book.to_send(100.5, force=True) is not None
    later = book.to_send(100.0 + STATUS_INTERVAL + 0.1)
    assert later is not None and later["backlog"] == 7
    book.sent(later, 100.0 + STATUS_INTERVAL + 0.1)

    # the decision's fields and the conditions: at once
    book.status["desiredReplicas"] = 3
    assert book.to_send(102.2) is not None
    book.status["desiredReplicas"] = 1
    book.set(Condition.SCALING, TRUE, "ScaleUp", "more")
    sent = book.to_send(102.2)
    assert sent is not None
    book.sent(sent, 102.2)

    # the oldest job's age growing alone never causes a patch, even much later or forced
    book.status[AGE] = 12.5
    assert book.to_send(500.0) is None
    assert book.to_send(500.0, force=True) is None
