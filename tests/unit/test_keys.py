"""The key scheme: one hash tag per queue, and a ready score that orders by priority then age."""

import pytest

from kubeq.store.keys import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    QueueKeys,
    ready_score,
    split_ready_score,
    validate_job_id,
)


def _slot_tag(key: str) -> str:
    return key[key.index("{") + 1 : key.index("}")]


def test_every_key_of_a_queue_shares_its_hash_tag() -> None:
    keys = QueueKeys.of("emails", "kq")
    for key in [*keys.script_keys, keys.job("abc"), keys.done("abc")]:
        assert key.startswith("kq:{emails}:")
        assert _slot_tag(key) == "emails"


@pytest.mark.parametrize("name", ["", "a{b}", "with space", "x" * 129, "é"])
def test_bad_queue_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(ValueError, match="invalid queue name"):
        QueueKeys.of(name)


def test_bad_job_id_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid job_id"):
        validate_job_id("a b")


def test_higher_priority_sorts_first_then_older_first() -> None:
    now = 1_795_000_000_000
    high_late = ready_score(9, now + 5_000)
    low_early = ready_score(0, now)
    mid_early, mid_late = ready_score(5, now), ready_score(5, now + 1)
    assert high_late < mid_early < mid_late < low_early


def test_scores_round_trip_and_stay_exact_in_doubles() -> None:
    for priority in range(PRIORITY_MIN, PRIORITY_MAX + 1):
        score = ready_score(priority, 9_999_999_999_999)
        assert float(score) == score < 2**53
        assert split_ready_score(float(score)) == (priority, 9_999_999_999_999)
