"""Execution control proven with real worker processes (docs/limits.md).

Global rate limits (per task and per queue) measured on the Redis server's clock across four
worker processes, per-key concurrency limits (and their slots freed by lease expiry after a
SIGKILL), aborting async, thread and process jobs while they run, expiry and soft timeouts.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
import qtasks
import redis

import kubeq
from kubeq.options import RateLimit
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import max_running, wait_until
from tests.redis.workers import StartWorker


def _max_in_window(times: list[int], window_ms: int = 1000) -> int:
    """The most events in any sliding window [t, t + window) that starts at an event."""
    best, j = 0, 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + window_ms:
            j += 1
        best = max(best, j - i)
    return best


def _start_fleet(start_worker: StartWorker, app: kubeq.App, queue: str, n: int = 4) -> None:
    fleet = [start_worker("--concurrency", "16") for _ in range(n)]
    q = app.queue(queue)

    def why() -> str:
        """What a failed wait needs to be understood: which workers Redis counts, and what
        each worker process said (this wait has timed out now and then)."""
        logs = "\n".join(
            f"--- worker pid {w.pid}, exit code {w.proc.poll()}:\n{w.log()[-3000:]}" for w in fleet
        )
        return f"{n} live workers on {queue}; live now: {sorted(q.stats().workers)}\n{logs}"

    wait_until(lambda: q.stats().live_workers == n, what=why)
    # warm up: each worker's threads and Redis connections exist before the measured run
    warm = app.enqueue_many(qtasks.unlimited_mark.s("warm") for _ in range(16 * n))
    for job in warm:
        job.result(timeout=30)


def _check_rate(r: redis.Redis, queue: str, tag: str, jobs: int, rl: RateLimit) -> None:
    """The limit holds where it is enforced, at hand-out on the Redis server's clock, and in
    what tasks observe, up to the workers' own scheduling jitter; the rate is reached."""
    keys = QueueKeys.of(queue)
    times = {k.decode(): v.decode().split() for k, v in r.hgetall(f"test:times:{tag}").items()}
    assert len(times) == jobs
    handed = {job_id: int(r.hget(keys.job(job_id), "started_at") or 0) for job_id in times}
    starts = sorted(int(s) for s, _ in times.values())
    ends = sorted(int(e) for _, e in times.values())
    limit = round(rl.per_second) + rl.burst
    # the limiter: every 1 s window, sliding, holds at most the limit plus the burst
    assert _max_in_window(sorted(handed.values())) <= limit
    # what tasks observe: a job starts a little after its hand-out; the spread of that delay
    # (scheduling on a busy host) can move that many more hand-outs into one window
    delays = [int(times[j][0]) - handed[j] for j in times]
    jitter = math.ceil(rl.per_second * (max(delays) - min(delays)) / 1000)
    assert _max_in_window(starts) <= limit + jitter, (_max_in_window(starts), jitter)
    assert _max_in_window(ends) <= limit + jitter, (_max_in_window(ends), jitter)
    print(
        f"rate proof: hand-out max/1s {_max_in_window(sorted(handed.values()))}, "
        f"starts {_max_in_window(starts)}, ends {_max_in_window(ends)}, jitter {jitter}"
    )
    # and the limit is reached, not undershot: total time within 10 % of jobs / rate; when it
    # is not, the longest pauses between hand-outs say where the time went
    total, expected = (ends[-1] - starts[0]) / 1000, jobs / rl.per_second
    out = sorted(handed.values())
    pauses = sorted(((b - a, a - out[0]) for a, b in itertools.pairwise(out)), reverse=True)
    assert 0.9 * expected <= total <= 1.1 * expected, (
        total,
        expected,
        "pauses (ms, at)",
        pauses[:8],
    )


def test_task_rate_limit_holds_across_four_workers(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    _start_fleet(start_worker, app, "default")
    jobs = app.enqueue_many(qtasks.rated.s("t") for _ in range(600))
    # meanwhile the same workers keep running other tasks of the queue at once
    marks = app.enqueue_many(qtasks.unlimited_mark.s("other") for _ in range(50))
    marks[-1].result(timeout=10)
    wait_until(lambda: r.llen("test:marks:other") == 50, timeout=10, what="unlimited jobs")
    assert r.hlen("test:times:t") < 100  # they did not wait behind the limited ones
    assert app.queue("default").stats().rate_limited
    for job in jobs:
        job.result(timeout=120)
    _check_rate(r, "default", "t", 600, RateLimit.parse("20/s"))


def test_queue_rate_limit_holds_across_four_workers(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    q = app.queue("rq")
    q.set_rate_limit("20/s")
    assert str(q.rate_limit()) == "20/s"
    _start_fleet(start_worker, app, "rq")
    jobs = q.enqueue_many(qtasks.queue_rated.s("q") for _ in range(600))
    wait_until(lambda: q.stats().rate_limited, timeout=10, what="rate-limited in stats")
    assert q.stats().rate_limit == 20
    for job in jobs:
        job.result(timeout=120)
    _check_rate(r, "rq", "q", 600, RateLimit.parse("20/s"))


def test_concurrency_limit_per_key_across_workers(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    for _ in range(3):
        start_worker("--concurrency", "8")
    keys = [f"site{i}.example" for i in range(5)]
    jobs = app.enqueue_many(qtasks.per_key.s("c", keys[i % 5], 0.02) for i in range(200))
    for job in jobs:
        job.result(timeout=120)
    for key in keys:
        spans = r.lrange(f"test:span:c:{key}", 0, -1)
        assert len(spans) == 80
        assert max_running(spans) == 2, key
        assert r.scard(QueueKeys.of("default").slots(f"k:{key}")) == 0


def test_a_per_call_limit_key_and_the_task_wide_default(app: kubeq.App) -> None:
    # the key given per call wins over the task's function; a call is refused with a
    # limit_key when its task has no concurrency limit
    given, derived = app.enqueue_many(
        [
            qtasks.per_key.s("x", "from-args", 0).set(limit_key="given"),
            qtasks.per_key.s("x", "y", 0),
        ]
    )
    keys = QueueKeys.of("default")
    assert app.redis.hget(keys.job(given.id), "cl_key") == b"k:given"
    assert app.redis.hget(keys.job(derived.id), "cl_key") == b"k:y"
    with pytest.raises(ValueError, match="concurrency_limit"):
        app.enqueue_many([qtasks.add.s(1, 2).set(limit_key="k")])
    with pytest.raises(ValueError, match="limit_key must be a non-empty printable string"):
        app.enqueue_many([qtasks.per_key.s("x", "y", 0).set(limit_key="a\nb")])


def test_slots_of_a_killed_worker_are_freed_when_its_lease_expires(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    r.set("test:slow:k", 1)
    a = start_worker("--concurrency", "4", "--lease", "2")
    jobs = app.enqueue_many(qtasks.per_key.s("k", "one", 0.01) for _ in range(4))
    span = "test:span:k:one"
    wait_until(lambda: r.llen(span) == 2, what="two jobs hold the key's two slots")
    held = {raw.decode().split()[2] for raw in r.lrange(span, 0, -1)}
    slots = QueueKeys.of("default").slots("k:one")
    assert {m.decode() for m in r.smembers(slots)} == held
    assert sorted(j.status() for j in jobs).count("waiting") == 2
    a.signal(signal.SIGKILL)
    a.wait()
    r.delete("test:slow:k")
    start_worker("--concurrency", "4", "--lease", "2")
    # nobody cleans up by hand: the lease runs out, the slots come free, all four run
    for job in jobs:
        assert job.result(timeout=30) is None
    assert r.scard(slots) == 0
    assert max_running(r.lrange(span, 0, -1)) <= 2 + 2  # the killed pair never ended


# -- abort -----


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_abort_running_async_thread_and_process_jobs(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    start_worker("--concurrency", "4", "--lease", "4")  # a heartbeat every second
    a = app.queue().enqueue(qtasks.abortable_async, "a")
    t = app.queue().enqueue(qtasks.abortable_thread, "t")
    p = app.queue().enqueue(qtasks.abortable_child, "p")
    for tag in "atp":
        wait_until(lambda tag=tag: r.llen(f"test:started:{tag}") == 1, what=f"{tag} started")
    job_id, task, queue, attempt = r.lindex("test:started:t", 0).decode().split()  # type: ignore[union-attr]
    assert (job_id, task, queue, attempt) == (t.id, "qtasks.abortable_thread", "default", "1")
    child = int(r.lindex("test:started:p", 0))  # type: ignore[arg-type]
    for job in (a, t, p):
        assert job.status() == "active"
        assert job.abort() is True
        assert job.status() == "aborted"
        with pytest.raises(kubeq.JobAborted):
            job.result(timeout=1)
    # the worker stops each attempt within one heartbeat (1 s here; 5 s allowed)
    wait_until(lambda: r.lrange("test:stopped:a", 0, -1) == [b"cancelled"], timeout=5)
    wait_until(lambda: r.lrange("test:stopped:t", 0, -1) == [b"aborted=True"], timeout=5)
    wait_until(lambda: not _alive(child), timeout=5, what="the process job's child killed")
    time.sleep(1.5)  # nothing runs again: no retry follows an abort
    for job, tag in ((a, "a"), (t, "t"), (p, "p")):
        assert r.llen(f"test:started:{tag}") == 1
        assert job.status() == "aborted"
    assert not r.exists("test:stopped:p")
    assert app.job(a.id).abort() is False  # already ended


def test_an_aborted_thread_that_never_checks_is_abandoned_and_its_result_refused(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    worker = start_worker("--concurrency", "2", "--lease", "4")
    job = app.queue().enqueue(qtasks.never_checks, "n", 2.5)
    wait_until(lambda: r.llen("test:started:n") == 1)
    assert job.abort() is True
    wait_until(lambda: "aborted; stopping its attempt" in worker.log(), timeout=5)
    wait_until(lambda: "still occupies a thread" in worker.log(), timeout=5)
    assert job.status() == "aborted"  # not left active
    # the worker's slot is free meanwhile: another job runs while the thread sleeps on
    assert app.queue().enqueue(qtasks.add, 2, 3).result(timeout=10) == 5
    wait_until(lambda: r.llen("test:stopped:n") == 1, timeout=10, what="the thread returned")
    time.sleep(0.5)
    assert job.status() == "aborted"
    assert app.redis.hget(QueueKeys.of("default").job(job.id), "result") is None


def test_abort_a_waiting_job_and_from_the_cli(app: kubeq.App, r: redis.Redis) -> None:
    from click.testing import CliRunner

    from kubeq.cli import cli

    job = app.queue().enqueue(qtasks.add, 1, 1)
    result = CliRunner().invoke(cli, ["--redis-url", app.redis_url, "job", "abort", job.id])
    assert result.exit_code == 0, result.output
    assert job.status() == "aborted"
    again = CliRunner().invoke(cli, ["--redis-url", app.redis_url, "job", "abort", job.id])
    assert again.exit_code == 1 and "already ended" in again.output
    shown = CliRunner().invoke(cli, ["--redis-url", app.redis_url, "job", job.id])
    assert shown.exit_code == 0 and "aborted" in shown.output
    assert r.zcard(QueueKeys.of("default").ready) == 0


# -- expiry and soft timeouts -----


def test_jobs_that_did_not_start_in_time_expire(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    late = app.queue().enqueue_call(qtasks.expiring, ("late",), expires=0.3)
    at = app.queue().enqueue_call(
        qtasks.expiring, ("at",), expires=datetime.now(UTC) + timedelta(seconds=0.3)
    )
    fine = app.queue().enqueue(qtasks.expiring, "fine")  # the task's own expires=30
    time.sleep(0.6)  # no worker yet: both pass their expiry while they wait
    start_worker()
    assert fine.result(timeout=10) is None
    for job in (late, at):
        with pytest.raises(kubeq.JobExpired):
            job.result(timeout=10)
        assert job.status() == "expired"
    assert not r.exists("test:ran:late") and not r.exists("test:ran:at")
    assert app.queue().stats().expired == 2
    with pytest.raises(ValueError, match="expires must be > 0"):
        app.queue().enqueue_call(qtasks.expiring, ("x",), expires=-1)


def test_soft_timeouts_let_thread_async_and_process_tasks_clean_up(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    start_worker("--concurrency", "3")
    thread = app.queue().enqueue(qtasks.soft_thread, "s")
    coro = app.queue().enqueue(qtasks.soft_async, "s")
    child = app.queue().enqueue(qtasks.soft_child, "s")
    assert child.result(timeout=20) == "cleaned up"  # caught it, returned: no hard timeout
    for job in (thread, coro):
        with pytest.raises(kubeq.JobFailed) as failed:
            job.result(timeout=20)
        assert "SoftTimeLimitExceeded" in failed.value.error
    assert sorted(r.lrange("test:cleaned:s", 0, -1)) == [b"async", b"process", b"thread"]


def test_current_job_outside_a_worker_says_so() -> None:
    assert kubeq.current_job() is None  # as RQ's get_current_job()
    with pytest.raises(RuntimeError, match="only available inside a task"):
        kubeq.current_job(required=True)


# -- bad data and the CLI -----


def test_a_job_with_malformed_limits_is_dead_lettered_alone(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    q = app.queue()
    q.pause()
    bad, good = (q.enqueue(qtasks.per_key, "m", key, 0) for key in ("bad", "good"))
    r.hset(QueueKeys.of("default").job(bad.id), "cl_n", "lots")  # written by hand
    q.resume()
    start_worker()
    assert good.result(timeout=10) is None
    with pytest.raises(kubeq.JobFailed, match="bad concurrency limit"):
        bad.result(timeout=10)


def test_kubeq_limit_sets_shows_and_clears_a_queue_rate(app: kubeq.App, r: redis.Redis) -> None:
    from click.testing import CliRunner

    from kubeq.cli import cli

    def run(*args: str) -> tuple[int, str]:
        out = CliRunner().invoke(cli, ["--redis-url", app.redis_url, "limit", *args])
        return out.exit_code, out.output

    assert run("scrape", "20/s") == (0, "scrape: at most 20/s\n")
    assert run("scrape") == (0, "scrape: 20/s\n")
    code, output = run("scrape", "20/day")
    assert code == 2 and "RATE" in output and "rate_limit must look like '10/s'" in output
    assert run("scrape", "--clear") == (0, "scrape: no rate limit\n")
    assert not r.exists(QueueKeys.of("scrape").rate_limit)


def test_a_malformed_queue_rate_limit_stops_the_fetch_and_says_how_to_fix_it(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    r.hset(QueueKeys.of("default").rate_limit, mapping={"n": "x", "ms": "1000"})
    job = app.queue().enqueue(qtasks.add, 1, 2)
    worker = start_worker()
    wait_until(lambda: "ratelimit is malformed" in worker.log(), timeout=15)
    assert "kubeq limit QUEUE --clear" in worker.log()
    assert job.status() == "queued"  # nothing changed
    app.queue().set_rate_limit(None)
    assert job.result(timeout=10) == 3


def test_a_purged_rate_limited_backlog_leaves_no_gap_in_the_schedule(
    app: kubeq.App, r: redis.Redis
) -> None:
    """Drive fetch.lua directly: 40 jobs of a 1/s task are parked up to 40 s ahead; once they
    are purged, a new job gets the next slot, not one behind the jobs that are gone."""
    q, keys = app.queue(), QueueKeys.of("default")
    args = ["w", 40, 60_000, 0, 15_000, 1, keys.base]
    q.enqueue_many(qtasks.slow_rated.s("p") for _ in range(40))
    app.scripts.fetch(keys=keys.script_keys, args=args)
    sec, usec = r.time()
    now = sec * 1000 + usec // 1000
    parked = [int(score) for _, score in r.zrange(keys.delayed, 0, -1, withscores=True)]
    assert len(parked) == 39 and max(parked) - now > 30_000  # one slot each, 1 s apart
    assert q.purge() == 39
    late = q.enqueue(qtasks.slow_rated, "p")
    app.scripts.fetch(keys=keys.script_keys, args=args)
    (score,) = r.zmscore(keys.delayed, [late.id])
    assert score is not None and score - now < 5000  # the next slot, not 40 s away


def test_aabort_from_async_code(app: kubeq.App, r: redis.Redis) -> None:
    import asyncio

    job = app.queue().enqueue(qtasks.add, 1, 1)

    async def main() -> bool:
        try:
            aborted = await job.aabort()
            with pytest.raises(kubeq.JobAborted):
                await job.aresult(timeout=1)
            return aborted and not await job.aabort()  # the second finds it ended
        finally:
            await app.aclose()

    assert asyncio.run(main()) is True
    assert job.status() == "aborted"
