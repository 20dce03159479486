"""Firing schedules: claim what is due, enqueue its runs by the policies, commit.

``fire_due`` is what a "beat" runs each tick (the operator for every TaskQueue's Redis, or
``app.schedules.fire_due()`` anywhere). One pass: ``schedule_claim.lua`` takes up to
``batch`` due schedules out of reach of every other firer (their index score becomes a lease
deadline and the hash gets this pass's token), the model's ``plan`` picks the runs (missed-run
policy), the overlap policy looks at the previous run's job, the runs are enqueued in one
batch with deterministic job ids (``schedule-<id>-<due>``), and ``schedule_commit.lua``
records them and puts each schedule back at its next due time. Two firers never enqueue one
due time twice: the claim is atomic. If a firer dies between claim and commit, the lease
lapses and another firer redoes the pass; the same job ids find the jobs still live.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kubeq.options import Call
from kubeq.schedules import Schedule, ScheduleError, plan
from kubeq.store import partitions
from kubeq.store.keys import (
    QueueKeys,
    queues_key,
    schedule_key,
    schedule_keys,
    validate_queue_name,
)
from kubeq.store.scripts import LUA, run_pipeline_async

LEASE_SECONDS = 60
BATCH = 1000
BUFFER_RECHECK_SECONDS = 5
LIVE = {"queued", "scheduled", "waiting", "deferred", "active"}

Enqueue = Callable[[list[Call]], Awaitable[Any]]


@dataclass
class Fired:
    """What one ``fire_due`` did (for logs, Events and metrics)."""

    runs: list[tuple[str, int, str]] = field(default_factory=list)
    """(schedule id, due time, job id) of each run enqueued."""
    missed: int = 0
    skipped: int = 0
    lag: list[float] = field(default_factory=list)
    """Seconds between each run's due time and its enqueue (Redis' clock)."""
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(schedule id, what went wrong) of each schedule that could not fire as defined."""


@dataclass
class _Claimed:
    id: str
    spec: bytes
    due: int | None
    rev: str
    last_job: str
    buffered: int | None


def _claimed(reply: list[Any]) -> tuple[int, list[_Claimed]]:
    now = int(reply[0])
    rows = reply[1:]
    out = []
    for i in range(0, len(rows), 6):
        sid, spec, nxt, rev, last_job, buf = rows[i : i + 6]
        out.append(
            _Claimed(
                sid.decode() if isinstance(sid, bytes) else sid,
                spec,
                int(nxt) if nxt else None,
                rev.decode() if isinstance(rev, bytes) else str(rev),
                last_job.decode() if isinstance(last_job, bytes) else last_job,
                int(buf) if buf else None,
            )
        )
    return now, out


def _call(s: Schedule, due: int, now: int, job_id: str | None = None) -> Call:
    eta = due + s.jitter_of(due)
    return Call(
        s.task,
        tuple(s.args),
        dict(s.kwargs),
        queue=s.queue,
        job_id=job_id or s.job_id(due),
        eta=eta if eta > now else None,
    )


async def fire_due(
    client: Any,
    prefix: str,
    enqueue: Enqueue,
    *,
    batch: int = BATCH,
    lease: int = LEASE_SECONDS,
    max_batches: int = 1000,
) -> Fired:
    """Fire every due schedule (up to ``batch * max_batches`` of them in this call)."""
    done = Fired()
    for _ in range(max_batches):
        n = await _fire_batch(client, prefix, enqueue, batch, lease, done)
        if n < batch:
            break
    return done


async def _fire_batch(
    client: Any, prefix: str, enqueue: Enqueue, batch: int, lease: int, done: Fired
) -> int:
    token = secrets.token_hex(8)
    due_key, warm_key, _ = schedule_keys(prefix)
    claim = (LUA["schedule_claim"], [due_key], [schedule_key("", prefix), lease, batch, token])
    (reply,) = await run_pipeline_async(client, [claim])
    now, claimed = _claimed(reply)
    if not claimed:
        return 0
    parsed: list[tuple[_Claimed, Schedule | None]] = []
    for c in claimed:
        try:
            parsed.append((c, Schedule.from_json(c.spec)))
        except (ScheduleError, ValueError, TypeError) as e:
            done.errors.append((c.id, f"schedule {c.id}: stored definition unreadable: {e}"))
            parsed.append((c, None))
    status = await _statuses(client, prefix, [(c, s) for c, s in parsed if s is not None])
    calls: list[tuple[str, Call]] = []
    commits: list[Any] = []
    for c, s in parsed:
        if s is None:  # stop firing it; `kubeq schedule show` still shows it
            commits += [c.id, c.rev, "", "", "", 0, 0, 0, 0, "", ""]
            continue
        last_status, last_queue = status.get(c.id, ("unknown", s.queue))
        live = last_status in LIVE
        runs: list[int] = []
        nxt: int | None = c.due
        missed = skipped = 0
        buffered = c.buffered
        if c.due is not None and c.due <= now:
            p = plan(s, c.due, now)
            runs, nxt, missed = list(p.runs), p.next_due, p.missed
        if s.overlap != "allow" and len(runs) > 1:
            skipped += len(runs) - 1
            runs = runs[-1:]
        if buffered is not None and not live:
            runs = [buffered, *runs][-1:] if runs else [buffered]
            skipped += 0 if runs == [buffered] else 1
            buffered = None
        if runs and live and s.overlap == "skip":
            skipped += len(runs)
            runs = []
        elif runs and live and s.overlap == "buffer_one":
            skipped += 1 if buffered is not None else 0
            buffered, runs = runs[-1], []
        elif runs and live and s.overlap == "cancel_other" and c.last_job:
            keys = QueueKeys.of(last_queue, prefix)
            abort = (LUA["abort"], keys.script_keys, [keys.base, c.last_job])
            await run_pipeline_async(client, [abort], raise_errors=False)
        try:
            validate_queue_name(s.queue)
        except ValueError as e:  # written by hand or by an old client: say so, do not retry
            done.errors.append((s.id, f"schedule {s.id}: {e}"))
            skipped, runs = skipped + len(runs), []
        for due in runs:
            calls.append((s.id, _call(s, due, now)))
            done.runs.append((s.id, due, s.job_id(due)))
            done.lag.append(max(0.0, now - due))
        done.missed += missed
        done.skipped += skipped
        last = runs[-1] if runs else None
        wake = now + BUFFER_RECHECK_SECONDS if buffered is not None else None
        commits += [
            *(c.id, c.rev, "" if nxt is None else nxt),
            *("" if last is None else last, "" if last is None else s.job_id(last)),
            *(len(runs), missed, skipped, s.prewarm_seconds),
            *("" if buffered is None else buffered, "" if wake is None else wake),
        ]
    if calls:
        try:
            await enqueue([call for _, call in calls])
        except ValueError:  # one refused call must not hold back the batch: one by one
            for sid, call in calls:
                try:
                    await enqueue([call])
                except ValueError as e:
                    done.errors.append((sid, f"schedule {sid}: run {call.job_id} refused: {e}"))
    commit = (
        LUA["schedule_commit"],
        [due_key, warm_key],
        [schedule_key("", prefix), token, *commits],
    )
    await run_pipeline_async(client, [commit])
    return len(claimed)


async def _statuses(
    client: Any, prefix: str, items: list[tuple[_Claimed, Schedule | None]]
) -> dict[str, tuple[str, str]]:
    """The status of each schedule's previous run and the queue holding it, for those whose
    overlap policy asks. On a partitioned queue the run is in one of its partitions (the
    queue set names them): every partition is asked, in the same round trip."""
    ask = [(c, s) for c, s in items if s is not None and s.overlap != "allow" and c.last_job]
    if not ask:
        return {}
    known = [
        q.decode() if isinstance(q, bytes) else q for q in await client.smembers(queues_key(prefix))
    ]
    where: list[tuple[str, str]] = []
    pipe = client.pipeline(transaction=False)
    for c, s in ask:
        assert s is not None
        for q in partitions.registered(s.queue, known) or [s.queue]:
            where.append((c.id, q))
            pipe.hget(QueueKeys.of(q, prefix).job(c.last_job), "status")
    out: dict[str, tuple[str, str]] = {}
    for (sid, q), v in zip(where, await pipe.execute(), strict=True):
        if v is not None or sid not in out:
            out[sid] = (v.decode() if isinstance(v, bytes) else v or "unknown", q)
    return out
