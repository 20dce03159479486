"""Overlap policies on a partitioned queue, on a real Redis: the previous run's job is found
in whichever partition holds it, so ``skip`` skips and ``cancel_other`` aborts it there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import kubeq
from kubeq.store.keys import schedule_key, schedule_keys

HOUR = 3600
PARTS = 4


@pytest.fixture
def papp(redis_url: str) -> Iterator[kubeq.App]:
    a = kubeq.App(redis_url, partitions={"pq": PARTS})
    yield a
    a.close()


def fire_twice(app: kubeq.App, overlap: str) -> tuple[str, list[tuple[str, int, str]]]:
    """Fire the schedule twice while its first run (no worker) is still queued."""
    sid = f"p-{overlap}"
    app.schedules.upsert(sid, "t.x", every=HOUR, overlap=overlap, queue="pq")
    for lag in (1, 0):
        now = int(app.redis.time()[0])
        app.redis.hset(schedule_key(sid), "next", now - lag)
        app.redis.zadd(schedule_keys()[0], {sid: now - lag})
        fired = app.schedules.fire_due()
        if lag:
            first = fired.runs[0][2]
    return first, fired.runs


def test_skip_finds_the_previous_run_in_its_partition(papp: kubeq.App) -> None:
    _, second = fire_twice(papp, "skip")
    assert second == []
    assert papp.queue("pq").stats().backlog == 1


def test_cancel_other_aborts_the_previous_run_in_its_partition(papp: kubeq.App) -> None:
    first, second = fire_twice(papp, "cancel_other")
    assert len(second) == 1
    held = [papp.job(first, f"pq#{i}").status() for i in range(PARTS)]
    assert held.count("unknown") == PARTS - 1, held  # it is in one partition
    assert set(held) - {"unknown"} <= {"cancelled", "aborted"}, held
    assert papp.queue("pq").stats().backlog == 1
