"""``kubeq worker --burst --max-jobs 1``: the one-job process a Job-mode pool's pod runs. It
leases exactly one job (whatever its prefetch room), runs and acknowledges it, and exits 0;
with nothing ready it exits 0 at once."""

from __future__ import annotations

import qtasks
import redis

import kubeq
from tests.redis.workers import StartWorker


def test_one_job_per_process_then_exit_0(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    jobs = app.enqueue_many([qtasks.run_and_record.s("one", 0.01) for _ in range(3)], queue="one")
    for n in (1, 2, 3):
        w = start_worker("--queue", "one", "--concurrency", "4", "--burst", "--max-jobs", "1")
        assert w.wait(60) == 0, w.log()
        assert r.llen("test:started:one") == n, w.log()  # one job, and only one, per process
        assert [j.status() for j in jobs].count("finished") == n  # acknowledged before exit
    assert [j.info().attempts for j in jobs] == [1, 1, 1]
    # nothing ready: exits 0 at once, leasing nothing
    w = start_worker("--queue", "one", "--burst", "--max-jobs", "1")
    assert w.wait(60) == 0, w.log()
    assert r.llen("test:started:one") == 3
