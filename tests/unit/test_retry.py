"""Backoff: exponential, jittered, always within [backoff_min, backoff_max]."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeq.retry import RetryPolicy


def test_backoff_doubles_without_jitter_and_caps() -> None:
    policy = RetryPolicy(backoff_min=1, backoff_max=10, jitter=False)
    assert [policy.delay(a) for a in range(1, 7)] == [1, 2, 4, 8, 10, 10]


@given(
    attempt=st.integers(1, 60),
    low=st.floats(0, 100),
    span=st.floats(0, 1000),
    seed=st.integers(0, 2**32),
)
def test_jittered_delay_stays_within_bounds(
    attempt: int, low: float, span: float, seed: int
) -> None:
    policy = RetryPolicy(backoff_min=low, backoff_max=low + span)
    delay = policy.delay(attempt, random.Random(seed))
    assert low <= delay <= low + span


def test_jitter_spreads_delays() -> None:
    policy = RetryPolicy(backoff_min=1, backoff_max=100)
    rng = random.Random(1)
    assert len({round(policy.delay(5, rng), 3) for _ in range(20)}) > 10


def test_retry_only_listed_exceptions_and_only_before_the_last_attempt() -> None:
    policy = RetryPolicy(max_attempts=3, retry_on=(ConnectionError,))
    assert policy.should_retry(1, ConnectionError())
    assert policy.should_retry(2, ConnectionError())
    assert not policy.should_retry(3, ConnectionError())
    assert not policy.should_retry(1, KeyError())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"backoff_min": 5, "backoff_max": 1}, "backoff_min <= backoff_max"),
        ({"backoff_factor": 0.5}, "backoff_factor"),
    ],
)
def test_bad_policy_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
