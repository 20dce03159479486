"""One fetch or one ack over a burst of one task's limited jobs (fetch.lua, ack.lua): each
job is held to its own limit fields and its key's slots, though a call checks a limit, counts
a key's holders and finds its waiting set empty once and then reuses what it found.

The scripts are called here directly (no worker), so that a whole burst is in one call: a
garbled limit in the middle of the burst is buried alone, a key whose slots hold stale
holders gives exactly its limit, healed, however many of its jobs the call pops, and one ack
of a key's finished jobs frees each slot and lets the waiting jobs run, the limit kept.
"""

from __future__ import annotations

import qtasks
import redis

import kubeq
from kubeq import defaults
from kubeq.outcomes import Settlement
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, run_pipeline
from kubeq.store.wire import FetchedJob, fetch_args, parse_fetch_reply

Q = QueueKeys.of("default")


def _lease(r: redis.Redis, want: int) -> list[FetchedJob]:
    """One fetch call of ``want`` jobs by a worker of this test; the jobs it leased."""
    keys, args = fetch_args("burst-worker", want, 60_000, 0, defaults.WORKER_TTL_MS, [Q])
    (raw,) = run_pipeline(r, [(LUA["fetch"], keys, args)])
    return list(parse_fetch_reply(raw, [Q]).jobs)


def _fetch(r: redis.Redis, want: int) -> list[str]:
    """One fetch call of ``want`` jobs by a worker of this test; the ids it leased."""
    return [job.id for job in _lease(r, want)]


def _ack(r: redis.Redis, jobs: list[FetchedJob]) -> list[int]:
    """One ack call: each job finished (result null); ack.lua's flag per job."""
    fields = [f for job in jobs for f in Settlement.finished(b"null").ack_fields(job.id, job.lease)]
    (flags,) = run_pipeline(r, [(LUA["ack"], Q.script_keys, [Q.base, len(jobs), *fields])])
    return list(flags)


def _status(r: redis.Redis, job_id: str) -> str:
    return (r.hget(Q.job(job_id), "status") or b"").decode()


def _key_burst(app: kubeq.App, r: redis.Redis) -> tuple[kubeq.Queue, list[kubeq.Job], str]:
    """Six jobs of ``qtasks.per_key`` under one key, enqueued on a paused queue (a fetch
    finds them all at once once it resumes); the queue, the jobs and their limit key."""
    q = app.queue()
    q.pause()
    jobs = [q.enqueue(qtasks.per_key, "s", "site", 0) for _ in range(6)]
    return q, jobs, (r.hget(Q.job(jobs[0].id), "cl_key") or b"").decode()


def test_a_garbled_rate_limit_in_a_burst_of_one_task_buries_that_job_alone(
    app: kubeq.App, r: redis.Redis
) -> None:
    q = app.queue()
    q.pause()
    jobs = [q.enqueue(qtasks.rated, f"b{i}") for i in range(6)]
    fields = r.hmget(Q.job(jobs[0].id), "rl_key", "rl_n", "rl_ms", "rl_b")
    assert all(fields), fields  # the task's limit is on every job, the same for each
    burst = int(fields[3] or 0)
    assert 1 <= burst <= 2, fields  # 20/s: at most 2 may start at once
    r.hset(Q.job(jobs[1].id), "rl_n", "lots")  # written by hand
    r.hset(Q.job(jobs[2].id), "rl_ms", "0")
    good = [jobs[0], *jobs[3:]]
    q.resume()

    leased = _fetch(r, 10)

    # the good ones start as the limit allows (its burst now), the others wait for their slots
    assert leased == [job.id for job in good[:burst]]
    for job in good[burst:]:
        assert _status(r, job.id) == "scheduled"
        assert r.zscore(Q.delayed, job.id) is not None
    for job in jobs[1:3]:
        assert _status(r, job.id) == "failed"
        assert r.hget(Q.job(job.id), "reason") == b"malformed job: bad rate limit"
        assert r.zscore(Q.dead, job.id) is not None


def test_a_burst_of_one_key_gets_exactly_its_slots_from_one_fetch_after_healing_them(
    app: kubeq.App, r: redis.Redis
) -> None:
    q, jobs, cl_key = _key_burst(app, r)
    slots = Q.slots(cl_key)
    # holders whose attempts cannot be running (no job data): the slots look full (2 of 2)
    r.sadd(slots, "gone-1", "gone-2")
    q.resume()

    leased = _fetch(r, 10)

    assert leased == [job.id for job in jobs[:2]]  # the task's limit: 2 at a time
    assert {m.decode() for m in r.smembers(slots)} == set(leased)  # healed, then taken
    assert [_status(r, job.id) for job in jobs[2:]] == ["waiting"] * 4
    assert r.zcard(Q.waiting(cl_key)) == 4

    # the slots are full now: another fetch leases none of the waiting ones
    assert _fetch(r, 10) == []
    assert r.scard(slots) == 2


def test_one_ack_of_a_key_s_finished_jobs_frees_each_slot_and_its_waiting_jobs_run_by_two(
    app: kubeq.App, r: redis.Redis
) -> None:
    q, jobs, cl_key = _key_burst(app, r)
    plain = q.enqueue(qtasks.add, 1, 2)  # no limit, acked in the same calls
    slots, waiting = Q.slots(cl_key), Q.waiting(cl_key)
    q.resume()

    started: list[str] = []
    running = _lease(r, 10)
    assert sorted(j.id for j in running) == sorted([jobs[0].id, jobs[1].id, plain.id])
    while running:
        held = {j.id for j in running if j.id != plain.id}
        assert {m.decode() for m in r.smembers(slots)} == held  # at most 2: the limit
        assert len(held) <= 2
        started += sorted(held)

        assert _ack(r, running) == [1] * len(running)

        for job in running:
            assert _status(r, job.id) == "finished"
            assert r.zscore(Q.active, job.id) is None
        assert r.scard(slots) == 0  # every slot of the call freed
        running = _lease(r, 10)
        assert len(running) == min(2, 6 - len(started))
        # the rest wait for a slot again: none is lost, none runs beyond the limit
        left = 6 - len(started) - len(running)
        assert r.zcard(waiting) + sum(1 for j in jobs if _status(r, j.id) == "queued") == left

    assert sorted(started) == sorted(j.id for j in jobs)
    assert r.zcard(waiting) == 0
    assert r.hget(Q.job(plain.id), "status") == b"finished"
