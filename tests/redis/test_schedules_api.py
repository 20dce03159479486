"""Runtime schedules on a real Redis: the library API (sync and async), firing by the
policies, two firers at once never enqueueing one due time twice, and a real worker running
what a schedule enqueued."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio

import kubeq
from kubeq.options import Call
from kubeq.schedules import Schedule, ScheduleError
from kubeq.store import schedulefire
from kubeq.store import schedules as store
from kubeq.store.keys import schedule_key, schedule_keys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker, run

HOUR = 3600


def make_due(r: redis.Redis, sid: str, due: int) -> None:
    """As if ``due`` came while nothing fired (an outage): the index and the hash agree."""
    r.hset(schedule_key(sid), "next", due)
    r.zadd(schedule_keys()[0], {sid: due})


def server_now(r: redis.Redis) -> int:
    return int(r.time()[0])


def fire(app: kubeq.App) -> schedulefire.Fired:
    return app.schedules.fire_due()


def test_upsert_get_list_pause_resume_delete(app: kubeq.App) -> None:
    s = app.schedules.upsert(
        "digest-1",
        "mail.digest",
        args=(1,),
        cron="0 9 * * 1",
        timezone="Europe/Berlin",
        queue="mail",
    )
    assert s.next_due is not None and not s.paused
    again = app.schedules.upsert(
        "digest-1",
        "mail.digest",
        args=(1,),
        cron="0 9 * * 1",
        timezone="Europe/Berlin",
        queue="mail",
    )
    assert again.next_due == s.next_due
    app.schedules.upsert("digest-2", "mail.digest", every=HOUR, queue="mail")
    assert [x.schedule.id for x in app.schedules.list()] == ["digest-1", "digest-2"]
    assert [x.schedule.id for x in app.schedules.list(after="digest-1")] == ["digest-2"]
    assert app.schedules.pause("digest-1")
    st = app.schedules.get("digest-1")
    assert st is not None and st.paused
    assert app.redis.zscore(schedule_keys()[0], "digest-1") is None
    assert app.schedules.resume("digest-1")
    assert app.redis.zscore(schedule_keys()[0], "digest-1") == s.next_due
    assert app.schedules.delete("digest-1") and not app.schedules.delete("digest-1")
    assert app.schedules.get("digest-1") is None
    job_id = app.schedules.trigger("digest-2")
    assert app.job(job_id, "mail").status() == "queued"


def test_async_twins(app: kubeq.App) -> None:
    async def main() -> None:
        await app.schedules.aupsert("a", "t.x", every=60, queue="aq")
        assert [s.schedule.id for s in await app.schedules.alist()] == ["a"]
        assert await app.schedules.apause("a")
        got = await app.schedules.aget("a")
        assert got is not None and got.paused
        assert await app.schedules.aresume("a")
        await app.schedules.atrigger("a")
        assert await app.schedules.adelete("a")

    asyncio.run(main())


def test_bad_fields_are_refused_before_anything_is_written(app: kubeq.App) -> None:
    with pytest.raises(ScheduleError, match="timezone: 'Berlin' is not an IANA"):
        app.schedules.upsert("bad", "t.x", cron="* * * * *", timezone="Berlin")
    assert app.schedules.list() == []


def test_a_bad_queue_is_refused_and_a_hand_written_one_blocks_nothing(app: kubeq.App) -> None:
    with pytest.raises(ScheduleError, match="queue: "):
        app.schedules.upsert("bad", "t.x", every=60, queue="a{b}")
    for sid in ("good", "broken"):
        app.schedules.upsert(sid, "t.x", every=HOUR, queue="ok")
    spec = app.redis.hget(schedule_key("broken"), "spec")
    assert spec is not None
    app.redis.hset(schedule_key("broken"), "spec", spec.replace(b'"ok"', b'"a{b}"'))
    now = server_now(app.redis)
    for sid in ("good", "broken"):
        make_due(app.redis, sid, now - 1)
    fired = fire(app)
    assert [r[0] for r in fired.runs] == ["good"]
    assert [sid for sid, _ in fired.errors] == ["broken"], fired.errors
    st = app.schedules.get("broken")
    assert st is not None and not st.claimed and st.next_due is not None and st.next_due > now


def test_missed_runs_by_policy(app: kubeq.App) -> None:
    # the minute's own run is within its 5 s grace in a minute's first seconds, and skip rightly
    # runs it then: start clear of a minute boundary, so every run of the 600 s is missed
    while (server_now(app.redis) + 10) % 60 < 20:
        time.sleep(0.5)
    now = server_now(app.redis)
    for policy in ("skip", "run_once", "run_all"):
        app.schedules.upsert(
            f"m-{policy}",
            "t.x",
            every=60,
            missed=policy,
            catch_up=3,
            queue=f"q-{policy}",
            grace=5.0,
        )
        make_due(app.redis, f"m-{policy}", now - 600)
    fired = fire(app)
    per = {p: [r for r in fired.runs if r[0] == f"m-{p}"] for p in ("skip", "run_once", "run_all")}
    assert per["skip"] == []
    assert len(per["run_once"]) == 1
    assert len(per["run_all"]) == 3
    assert app.queue("q-run_all").stats().backlog == 3
    st = app.schedules.get("m-skip")
    assert st is not None and st.missed >= 9 and st.next_due is not None and st.next_due > now


def two_runs(app: kubeq.App, overlap: str) -> tuple[str, str, schedulefire.Fired]:
    """Fire a schedule twice while its first run (no worker) is still queued."""
    sid = f"o-{overlap}"
    app.schedules.upsert(sid, "t.x", every=HOUR, overlap=overlap, queue=sid)
    make_due(app.redis, sid, server_now(app.redis) - 1)
    first = fire(app).runs
    make_due(app.redis, sid, server_now(app.redis))
    second = fire(app)
    return first[0][2], sid, second


def test_overlap_allow_and_skip(app: kubeq.App) -> None:
    _, sid, second = two_runs(app, "allow")
    assert len(second.runs) == 1 and app.queue(sid).stats().backlog == 2
    _, sid, second = two_runs(app, "skip")
    assert second.runs == [] and second.skipped == 1 and app.queue(sid).stats().backlog == 1


def test_overlap_cancel_other(app: kubeq.App) -> None:
    first, sid, second = two_runs(app, "cancel_other")
    assert len(second.runs) == 1
    assert app.job(first, sid).status() in ("cancelled", "aborted")
    assert app.queue(sid).stats().backlog == 1


def test_overlap_buffer_one_runs_after_the_previous_ends(app: kubeq.App) -> None:
    first, sid, second = two_runs(app, "buffer_one")
    assert second.runs == [] and app.queue(sid).stats().backlog == 1
    st = app.schedules.get(sid)
    assert st is not None and st.buffered is not None
    app.job(first, sid).cancel()  # the previous run ends
    wait_until(lambda: fire(app).runs or None, timeout=30, what="the buffered run")
    assert app.queue(sid).stats().backlog == 1
    st = app.schedules.get(sid)
    assert st is not None and st.buffered is None and st.last_job != first


def test_two_firers_enqueue_each_due_time_once(app: kubeq.App, redis_url: str) -> None:
    n = 3000
    now = server_now(app.redis)
    # written as upsert writes them, in one pipeline (one upsert per call is the slow part)
    defs = [Schedule(f"s{i:05}", "t.x", every=HOUR, queue="many") for i in range(n)]
    store.run(app.redis, [store.upsert_call(s, "kubeq", None, None) for s in defs])
    pipe = app.redis.pipeline()
    for s in defs:  # all due at once, as after an outage
        pipe.hset(schedule_key(s.id), "next", now - 1)
        pipe.zadd(schedule_keys()[0], {s.id: now - 1})
    pipe.execute()

    async def firer() -> schedulefire.Fired:
        client = redis.asyncio.Redis.from_url(redis_url)
        other = kubeq.App(redis_url)

        async def enqueue(calls: list[Call]) -> None:
            await other.aenqueue_many(calls)

        try:
            return await schedulefire.fire_due(client, "kubeq", enqueue, batch=50)
        finally:
            await client.aclose()

    async def both() -> list[schedulefire.Fired]:
        return list(await asyncio.gather(firer(), firer()))

    a, b = asyncio.run(both())
    ids = [r[2] for r in a.runs + b.runs]
    assert len(ids) == n and len(set(ids)) == n, "a due time was enqueued twice"
    assert a.runs and b.runs, "both firers took part"
    assert app.queue("many").stats().backlog == n
    assert app.redis.zcount(schedule_keys()[0], "-inf", now) == 0


def test_a_real_worker_runs_the_scheduled_job(app: kubeq.App, start_worker: StartWorker) -> None:
    start_worker("--queue", "beat")
    app.schedules.upsert("beat", "qtasks.add", args=(2, 3), every=1, queue="beat")
    done: list[str] = []

    def ran() -> bool:
        done.extend(r[2] for r in fire(app).runs)
        return any(app.job(j, "beat").status() == "finished" for j in done)

    wait_until(ran, timeout=60, what="a scheduled run finished by a worker")
    finished = next(j for j in done if app.job(j, "beat").status() == "finished")
    assert app.job(finished, "beat").result(timeout=5) == 5


def test_a_skipped_dst_time_runs_once_with_a_real_worker(
    app: kubeq.App, start_worker: StartWorker, redis_url: str
) -> None:
    """02:30 in Europe/Berlin does not exist on 2026-03-29: the run due then is the one at
    03:00 CEST, once; a real worker runs it and the CLI shows it in the schedule's zone."""
    start_worker("--queue", "dst")
    st = app.schedules.upsert(
        "berlin",
        "qtasks.add",
        args=(1, 2),
        cron="30 2 * * *",
        timezone="Europe/Berlin",
        queue="dst",
        end="2026-03-29T03:00:00+02:00",  # so the months since do not catch up
    )
    saturday = 1_774_692_000  # 2026-03-28T10:00:00Z
    gap = st.schedule.next_fire(saturday)
    assert gap == 1_774_746_000  # 2026-03-29T01:00:00Z = 03:00 CEST
    make_due(app.redis, "berlin", gap)
    runs = fire(app).runs
    assert [(sid, due) for sid, due, _ in runs] == [("berlin", gap)]
    assert app.job(runs[0][2], "dst").result(timeout=60) == 3
    assert fire(app).runs == []
    ended = app.schedules.get("berlin")
    assert ended is not None and ended.next_due is None and ended.fired == 1
    show = run(redis_url, "schedule", "show", "berlin").stdout
    assert "last: 2026-03-29T03:00:00+02:00" in show, show
