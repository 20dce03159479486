"""Soak: 10,000 jobs, 4 worker processes, random SIGKILL/SIGTERM, replacements started.

Every job's result must be there at the end. Jobs running on a SIGKILLed worker run again
(at-least-once), so some run twice: the count is reported, not asserted.
"""

from __future__ import annotations

import random
import signal
import time

import pytest
import qtasks
import redis

import kubeq
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker, WorkerProcess

JOBS = 10_000
WORKERS = 4


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_soak_with_random_kills(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(20261126)
    q = app.queue("soak")
    jobs = q.enqueue_many([qtasks.soak.s(i) for i in range(JOBS)])
    args = ("--queue", "soak", "--concurrency", "8", "--lease", "2", "--drain-timeout", "1")
    running: list[WorkerProcess] = [start_worker(*args) for _ in range(WORKERS)]
    kills = terms = 0
    started = time.monotonic()
    while kills + terms < 16:
        time.sleep(rng.uniform(0.3, 0.8))
        s = q.stats()
        if s.backlog + s.in_flight == 0:
            break
        victim = running.pop(rng.randrange(len(running)))
        if rng.random() < 0.5:
            victim.signal(signal.SIGKILL)
            kills += 1
        else:
            victim.signal(signal.SIGTERM)
            terms += 1
        running.append(start_worker(*args))

    def drained() -> bool:
        s = q.stats()
        return s.backlog + s.in_flight + s.delayed == 0

    wait_until(
        drained,
        timeout=300,
        what="the soak queue to drain",
    )
    elapsed = time.monotonic() - started
    results = [job.result(timeout=10) for job in jobs]
    assert results == [2 * i for i in range(JOBS)]
    runs = {int(k): int(v) for k, v in r.hgetall("test:soak:runs").items()}
    assert sorted(runs) == list(range(JOBS))  # every job ran
    twice = sum(1 for n in runs.values() if n > 1)
    assert q.stats().dead == 0
    with capsys.disabled():
        print(
            f"\nsoak: {JOBS} jobs, {WORKERS} workers, {kills} SIGKILL + {terms} SIGTERM, "
            f"{elapsed:.1f} s; all results present; {twice} jobs ran more than once "
            f"(max {max(runs.values())} runs)"
        )
