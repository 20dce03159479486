"""Job ids: 19 characters that sort as they were made (one at a time and in a plan's bulk),
unique, URL- and key-safe, and that say when they were made."""

from __future__ import annotations

import re
import time

from kubeq.store import ids
from kubeq.store.keys import validate_job_id


def test_ids_are_short_unique_and_sort_by_creation() -> None:
    made = [ids.new_job_id() for _ in range(20_000)]
    for job_id in made[:100]:
        validate_job_id(job_id)  # a valid id wherever one is given
    assert all(re.fullmatch(r"[0-9A-Za-z_-]{19}", i) for i in made)
    assert made == sorted(made) and len(set(made)) == len(made)
    plan = ids.PlanIds()
    bulk = [plan.next() for _ in range(3 * 4096 + 7)]  # the time is drawn again twice
    assert all(len(i) == 19 for i in bulk) and bulk == sorted(bulk)
    assert len(set(bulk)) == len(bulk) and bulk[0] > made[-1]


def test_an_id_says_when_it_was_made_and_other_ids_do_not() -> None:
    before = time.time_ns() // 1_000_000
    made = ids.new_job_id()
    after = time.time_ns() // 1_000_000
    assert before <= (ids.created_ms(made) or 0) <= after
    assert ids.created_ms(ids.PlanIds().next()) is not None
    for other in ("order-1", "0661e1a23792a6017ba9f3dfb027", "a:b" * 6 + "c", "é" * 19, "~" * 19):
        assert ids.created_ms(other) is None


def test_the_alphabet_is_in_ascii_order() -> None:
    assert list(ids.ALPHABET) == sorted(ids.ALPHABET) and len(set(ids.ALPHABET)) == 64
