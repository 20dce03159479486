"""A worker's background tasks (the heartbeat with its callback sweep, the hand-off) never
die from one bad item written into Redis: what cannot be read is set aside and logged, every
other entry proceeds, leases keep being renewed; and /healthz fails when a background task
has stopped anyway.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import qtasks
import redis
import redis.asyncio

import kubeq
from kubeq import defaults
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, run_pipeline, run_pipeline_async
from kubeq.worker.loop import Worker
from kubeq.worker.settings import WorkerSettings
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker


def _parent_ended_without_hand_off(
    app: kubeq.App, r: redis.Redis, aged: bool = True
) -> tuple[str, kubeq.Job]:
    """A parent cancelled with no worker running (so only a sweep hands it off), and its
    child waiting for it (allow_failure: released by the hand-off). The parent's entry is
    aged past the grace period, so the first sweep takes it (unless not ``aged``)."""
    q = app.queue()
    parent = q.enqueue(qtasks.add, 1, 2)
    child = q.enqueue_call(qtasks.add, (3, 4), depends_on=[parent], allow_failure=True)
    assert child.status() == "deferred"
    assert parent.cancel()
    keys = QueueKeys.of("default")
    assert r.zscore(keys.handoff, parent.id) is not None
    if aged:
        r.zadd(keys.handoff, {parent.id: 1})
    return parent.id, child


def _long_job_runs_once(app: kubeq.App, r: redis.Redis, start_worker: StartWorker) -> None:
    """A 6 s job under a 2 s lease, on a worker with one slot and no prefetch, while a second
    worker waits: it runs once only if its lease is renewed all along."""
    start_worker("--lease", "2", "--concurrency", "1", "--prefetch-ms", "0")
    job = app.queue().enqueue(qtasks.run_and_record, "long", 6)
    wait_until(lambda: r.llen("test:started:long"), what="the long job to start")
    start_worker("--lease", "2")  # takes the job over if the lease lapses
    assert job.result(timeout=60)
    time.sleep(2.5)  # a second delivery would have started by now
    assert r.llen("test:started:long") == 1


@pytest.mark.parametrize("where", ["handoff", "dependents"])
def test_an_undecodable_entry_does_not_stop_the_heartbeat(
    where: str, app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """Not UTF-8: no id kubeq could have written, in ``{q}:handoff`` or beside a real child
    in a parent's dependents set."""
    keys = QueueKeys.of("default")
    parent, child = _parent_ended_without_hand_off(app, r)
    if where == "handoff":
        r.zadd(keys.handoff, {b"\xff\xfe": 0})
    else:
        r.sadd(keys.dependents(parent), b"\xff\t\xfe")
    _long_job_runs_once(app, r, start_worker)
    assert child.result(timeout=30) == 7  # released by the sweep despite its bad sibling
    assert r.zcard(keys.handoff) == 0
    if where == "handoff":
        assert r.hexists(keys.handoff_aside, b"\xff\xfe")  # kept for a person to look at


def test_a_handoff_entry_whose_job_is_not_a_hash_blocks_no_other_entry(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    keys = QueueKeys.of("default")
    r.set(keys.job("garbage"), "not a hash")
    r.zadd(keys.handoff, {"garbage": 0})  # first of the batch
    _parent, child = _parent_ended_without_hand_off(app, r)
    start_worker("--lease", "2")
    assert child.result(timeout=30) == 7
    wait_until(lambda: r.zcard(keys.handoff) == 0, what="the hand-off set to empty")
    reason = r.hget(keys.handoff_aside, "garbage")
    assert reason is not None and b"WRONGTYPE" in reason
    assert r.get(keys.job("garbage")) == b"not a hash"  # set aside, not destroyed


def test_an_entry_whose_callback_queue_holds_garbage_waits_behind_the_others(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    """Redis refuses the callback's enqueue (its queue's ready set is a string): that entry
    stays, re-scored behind the others, which are handed off and forgotten; once the
    garbage is gone, a later sweep enqueues the callback."""
    keys = QueueKeys.of("default")
    r.set(QueueKeys.of("cbq").ready, "garbage")
    parent, child = _parent_ended_without_hand_off(app, r, aged=False)
    start_worker("--lease", "2")
    refused = app.queue().enqueue_call(
        qtasks.add, (1, 2), on_success=qtasks.record_result.s("refused").set(queue="cbq")
    )
    assert refused.result(timeout=30) == 3
    wait_until(lambda: r.zscore(keys.handoff, refused.id) is not None, what="a refused hand-off")
    r.zadd(keys.handoff, {refused.id: 0, parent: 1})  # aged: both in the next sweep's batch
    assert child.result(timeout=30) == 7
    wait_until(
        lambda: r.zrange(keys.handoff, 0, -1) == [refused.id.encode()],
        what="every other entry forgotten",
    )
    score = r.zscore(keys.handoff, refused.id)
    assert score is not None and score > 1  # behind the others
    r.delete(QueueKeys.of("cbq").ready)
    start_worker("--queue", "cbq")
    wait_until(
        lambda: r.lrange("test:cb:refused", 0, -1),
        timeout=defaults.HANDOFF_GRACE_SECONDS + 30,
        what="the callback, once its queue is repaired",
    )
    assert r.zcard(keys.handoff) == 0


def test_health_fails_when_a_background_task_has_stopped(redis_url: str) -> None:
    async def main() -> tuple[bool, str, int]:
        settings = WorkerSettings(
            "qtasks", ["default"], redis_url=redis_url, handle_signals=False, lease_seconds=1
        )
        worker = Worker(settings, dict(qtasks.app.tasks))

        async def broken() -> None:  # a bug that escapes the loop's own guard
            await asyncio.sleep(0.2)
            raise RuntimeError("a bug")

        worker._heartbeat_loop = broken  # type: ignore[method-assign]
        runner = asyncio.create_task(worker.run())
        ok, message = True, ""
        for _ in range(30):
            await asyncio.sleep(0.1)
            ok, message = worker.health()
            if not ok:
                break
        worker.request_stop()
        try:
            code = await runner
        except RuntimeError:
            code = -1  # the dead task's error escaped run()
        return ok, message, code

    ok, message, code = asyncio.run(main())
    assert not ok, message
    assert "heartbeat" in message and "a bug" in message
    assert code == 0


def test_health_fails_when_every_heartbeat_fails(redis_url: str) -> None:
    """A renewal that fails on every beat for a reason no retry fixes (here a bug): the loop
    goes on (the sweep still runs) but /healthz fails once no lease was renewed for
    --stall-seconds, so Kubernetes restarts the worker."""

    async def main() -> tuple[bool, str, bool]:
        settings = WorkerSettings(
            "qtasks",
            ["default"],
            redis_url=redis_url,
            handle_signals=False,
            lease_seconds=1,
            stall_seconds=3,  # the idle loop turns every 2 s
        )
        worker = Worker(settings, dict(qtasks.app.tasks))

        async def broken() -> None:
            raise KeyError("a bug")

        worker._heartbeat = broken  # type: ignore[method-assign]
        runner = asyncio.create_task(worker.run())
        ok, message = True, ""
        for _ in range(60):
            await asyncio.sleep(0.1)
            ok, message = worker.health()
            if not ok:
                break
        alive = not worker._background["heartbeat"].done()
        worker.request_stop()
        await runner
        return ok, message, alive

    ok, message, alive = asyncio.run(main())
    assert not ok and "no heartbeat" in message, message
    assert alive


def test_a_refused_heartbeat_keeps_health_and_the_sweep(
    redis_url: str, app: kubeq.App, r: redis.Redis
) -> None:
    """A queue's ready set holds garbage: Redis refuses that queue's heartbeat and fetch
    (docs/architecture.md, Validate before mutate). A restart cannot fix data, so /healthz
    stays up, and the sweep of the other queue still runs."""
    r.set(QueueKeys.of("broken").ready, "garbage")
    _parent, child = _parent_ended_without_hand_off(app, r)

    async def main() -> list[tuple[bool, str]]:
        settings = WorkerSettings(
            "qtasks",
            ["default", "broken"],
            redis_url=redis_url,
            handle_signals=False,
            lease_seconds=1,
            stall_seconds=3,
        )
        worker = Worker(settings, dict(qtasks.app.tasks))
        runner = asyncio.create_task(worker.run())
        seen = []
        for _ in range(50):  # 5 s: past --stall-seconds
            await asyncio.sleep(0.1)
            seen.append(worker.health())
        worker.request_stop()
        await runner
        return seen

    seen = asyncio.run(main())
    assert all(ok for ok, _ in seen), [m for ok, m in seen if not ok][:1]
    assert child.status() == "queued"  # released by the sweep; no fetch gets it here


@pytest.mark.parametrize("raise_errors", [True, False])
def test_a_script_refused_after_noscript_is_reported_as_asked(
    raise_errors: bool, redis_url: str, r: redis.Redis
) -> None:
    """Redis forgot the scripts (a restart): the calls are resent after loading them, and a
    call Redis then refuses raises (raise_errors) or stands in its place, as on a first try;
    it used to be the other way round, so the heartbeat parsed an error as its reply."""
    r.set(QueueKeys.of("broken").ready, "garbage")
    calls = [
        (LUA["stats"], QueueKeys.of(q).script_keys, [defaults.WORKER_TTL_MS])
        for q in ("default", "broken")
    ]

    async def run() -> list[object]:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            await client.script_flush()
            return await run_pipeline_async(client, calls, raise_errors=raise_errors)
        finally:
            await client.aclose()

    for runner in (
        lambda: run_pipeline(r, calls, raise_errors=raise_errors),
        lambda: asyncio.run(run()),
    ):
        r.script_flush()
        if raise_errors:
            with pytest.raises(redis.ResponseError):
                runner()
        else:
            ok, refused = runner()
            assert not isinstance(ok, BaseException)
            assert isinstance(refused, redis.ResponseError)
