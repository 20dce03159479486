"""retry.decide: the retry-or-bury decision of a failed attempt, as a pure function."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from kubeq import Retry, RetryPolicy
from kubeq.outcomes import Outcome
from kubeq.retry import decide

POLICY = RetryPolicy(max_attempts=3, backoff_min=1.0, backoff_max=10.0, jitter=False)


def test_a_retryable_error_with_attempts_left_retries_after_the_backoff() -> None:
    s = decide(POLICY, 2, ConnectionError("reset"), "tb")
    assert s.outcome is Outcome.RETRY
    assert s.value == "ConnectionError: reset" and s.traceback == "tb"
    assert s.retry_delay_ms == 2000  # 1 s * 2**(2-1), no jitter


def test_the_last_attempt_is_buried_with_a_reason_that_counts_attempts() -> None:
    s = decide(POLICY, 3, ValueError("bad"))
    assert s.outcome is Outcome.FAILED
    assert s.reason == "failed 3 of 3 attempts: ValueError: bad"


def test_an_exception_outside_retry_on_is_buried_at_once_and_says_why() -> None:
    policy = RetryPolicy(retry_on=(ConnectionError,))
    s = decide(policy, 1, KeyError("k"))
    assert s.outcome is Outcome.FAILED
    assert s.reason.startswith("KeyError is not retried by this task")


def test_retry_raised_by_the_task_uses_its_own_delay_even_outside_retry_on() -> None:
    policy = RetryPolicy(retry_on=(ConnectionError,), max_attempts=2)
    s = decide(policy, 1, Retry(delay=timedelta(seconds=7)))
    assert (s.outcome, s.retry_delay_ms) == (Outcome.RETRY, 7000)
    last = decide(policy, 2, Retry(delay=1))
    assert last.outcome is Outcome.FAILED
    assert last.reason == "retry requested on the last attempt (2 of 2)"


def test_a_base_exception_never_retries() -> None:
    s = decide(POLICY, 1, SystemExit(3))
    assert s.outcome is Outcome.FAILED and "SystemExit" in s.reason


@pytest.mark.parametrize("attempt", range(1, 10))
def test_jittered_delays_stay_within_the_policy_bounds(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=20, backoff_min=0.5, backoff_max=4.0)
    s = decide(policy, attempt, OSError("x"), rng=random.Random(attempt))
    assert 500 <= s.retry_delay_ms <= 4000
