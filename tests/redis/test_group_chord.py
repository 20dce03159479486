"""``kubeq.group`` and ``kubeq.chord`` with real worker processes: a group's results
in order; a chord's callback runs once with every result, even with retried members, a
member's worker SIGKILLed mid-job (the 200-chord stress test is test_chord_stress.py);
cancelling a group mid-way; bad input refused."""

from __future__ import annotations

import json
import signal

import pytest
import qtasks
import redis

import kubeq
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker


def _calls(r: redis.Redis, tag: str) -> list[list[int]]:
    return [json.loads(v) for v in r.lrange(f"test:chord:{tag}", 0, -1)]


def test_group_results_in_order(app: kubeq.App, start_worker: StartWorker) -> None:
    start_worker("--concurrency", "8")
    g = kubeq.group(qtasks.add.s(i, i) for i in range(10)).delay(app)
    assert g.results(timeout=30) == [2 * i for i in range(10)]
    assert g.status() == "finished"


def test_chord_with_retried_members_calls_back_once(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    start_worker("--concurrency", "8")
    c = kubeq.chord(
        [qtasks.flaky_square.s(x, "retry") for x in range(6)], qtasks.collect.s("retry")
    ).delay(app)
    assert c.result(timeout=60) == sum(x * x for x in range(6))
    assert _calls(r, "retry") == [[x * x for x in range(6)]]
    assert [j.info().attempts for j in c.group.jobs] == [2, 1, 2, 1, 2, 1]


def test_chord_survives_a_member_worker_killed_mid_job(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    doomed = start_worker("--lease", "1")
    c = kubeq.chord(
        [qtasks.add.s(1, 1), qtasks.gate.s("chordkill")], qtasks.collect_any.s("kill")
    ).delay(app)
    wait_until(lambda: r.llen("test:started:chordkill"), what="the slow member to start")
    doomed.signal(signal.SIGKILL)
    r.set("test:go:chordkill", 1)
    start_worker("--lease", "1")
    assert c.result(timeout=60) == 2
    assert _calls(r, "kill") == [[2, "chordkill"]]


def test_cancel_a_group_mid_way(app: kubeq.App, r: redis.Redis, start_worker: StartWorker) -> None:
    start_worker("--concurrency", "1")
    g = kubeq.group([qtasks.gate.s("gc")] + [qtasks.record_args.s(f"gc{i}") for i in range(5)])
    handle = g.delay(app)
    wait_until(lambda: r.llen("test:started:gc"), what="the first member to start")
    assert handle.cancel() == 5
    r.set("test:go:gc", 1)
    assert handle.jobs[0].result(timeout=30) == "gc"
    assert all(r.llen(f"test:cb:gc{i}") == 0 for i in range(5))
    assert [j.status() for j in handle.jobs[1:]] == ["cancelled"] * 5


def test_bad_groups_and_chords_are_refused(app: kubeq.App) -> None:
    with pytest.raises(ValueError, match="group of 0"):
        kubeq.group([])
    with pytest.raises(TypeError, match="group member 1"):
        kubeq.group([qtasks.add.s(1, 2), qtasks.add])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="chord's callback"):
        kubeq.chord([qtasks.add.s(1, 2)], qtasks.collect)  # type: ignore[arg-type]
    assert app.queue().stats().backlog == 0
