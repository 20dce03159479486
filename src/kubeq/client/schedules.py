"""``app.schedules``: schedules an application creates and changes at run time.

    app.schedules.upsert("digest-42", send_digest, args=(42,), cron="0 9 * * 1",
                         timezone="Europe/Berlin", overlap="skip")

The same model as the TaskQueue spec's ``schedules`` (``kubeq.schedules``), stored in Redis
(``kubeq.store.schedules``) and fired by the operator of any TaskQueue on this Redis and
prefix, or by whatever calls ``fire_due`` (a beat of your own). ``upsert`` is idempotent:
calling it again with the same definition changes nothing, and a changed cron line, interval,
time zone or start/end recomputes the next due time. Every method has an async twin
(``aupsert``, ``aget``, ``alist``, ``adelete``, ``apause``, ``aresume``, ``atrigger``).
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Iterable
from typing import Any, Protocol

from kubeq.client.tasks import task_name
from kubeq.options import Call
from kubeq.schedules import Schedule, ScheduleError
from kubeq.store import audit, schedulefire
from kubeq.store import schedules as store
from kubeq.store.schedules import ScheduleState


class ScheduleApp(Protocol):
    """What the schedules need of an App."""

    prefix: str
    default_queue: str
    tasks: dict[str, Any]

    @property
    def redis(self) -> Any: ...

    @property
    def aredis(self) -> Any: ...

    def enqueue_many(self, calls: Iterable[Call], *, queue: str | None = None) -> Any: ...

    async def aenqueue_many(self, calls: Iterable[Call], *, queue: str | None = None) -> Any: ...


__all__ = ["ScheduleError", "ScheduleState", "Schedules"]


class Schedules:
    """The schedules of one App's Redis and prefix."""

    def __init__(self, app: ScheduleApp) -> None:
        self.app = app

    def _build(self, schedule_id: str, task: Any, kw: dict[str, Any]) -> Schedule:
        kw.setdefault("queue", None)
        if kw["queue"] is None:
            name = task_name(task)
            registered = self.app.tasks.get(name)
            kw["queue"] = registered.options.queue if registered is not None else None
            kw["queue"] = kw["queue"] or self.app.default_queue
        return Schedule(schedule_id, task_name(task), **kw)

    # -- sync ----------------------------------------------------------------------------

    def upsert(
        self, schedule_id: str, task: Any, *, paused: bool | None = None, **fields: Any
    ) -> ScheduleState:
        """Create or replace schedule ``schedule_id`` (fields: ``kubeq.schedules.Schedule``).
        ``paused`` None keeps a stored schedule's paused state. Raises ScheduleError."""
        s = self._build(schedule_id, task, fields)
        (old,) = store.read(self.app.redis, self.app.prefix, [s.id])
        call = store.upsert_call(s, self.app.prefix, old.schedule if old else None, paused)
        store.run(self.app.redis, [call])
        got = self.get(s.id)
        assert got is not None
        return got

    def get(self, schedule_id: str) -> ScheduleState | None:
        return store.read(self.app.redis, self.app.prefix, [schedule_id])[0]

    def list(self, after: str = "", limit: int = 1000) -> list[ScheduleState]:
        """Schedules in id order, ``limit`` from after ``after`` (page with the last id)."""
        ids = store.list_ids(self.app.redis, self.app.prefix, after, limit)
        return [s for s in store.read(self.app.redis, self.app.prefix, ids) if s is not None]

    def _state(self, schedule_id: str, action: str) -> bool:
        got = self.get(schedule_id)
        if got is None:
            return False
        call = store.state_call(got.schedule, self.app.prefix, action)
        changed = bool(store.run(self.app.redis, [call])[0] == 1)
        if changed:
            audit.record(self.app.redis, self.app.prefix, f"schedule.{action}", schedule_id)
        return changed

    def delete(self, schedule_id: str) -> bool:
        """Remove it; False when there was none. Runs already enqueued stay."""
        return self._state(schedule_id, "delete")

    def pause(self, schedule_id: str) -> bool:
        return self._state(schedule_id, "pause")

    def resume(self, schedule_id: str) -> bool:
        """Fire again from the next due time after now (runs due while paused are skipped)."""
        return self._state(schedule_id, "resume")

    def trigger(self, schedule_id: str) -> str:
        """Enqueue one run now, outside the schedule's times; its job id."""
        got = self.get(schedule_id)
        if got is None:
            raise KeyError(f"no schedule {schedule_id!r}")
        (job,) = self.app.enqueue_many([_manual(got.schedule)])
        audit.record(self.app.redis, self.app.prefix, "schedule.trigger", schedule_id)
        return str(job.id)

    def fire_due(self) -> schedulefire.Fired:
        """Fire what is due now (what the operator does every poll): for a beat of your own."""
        return asyncio.run(self.afire_due())

    # -- async ---------------------------------------------------------------------------

    async def aupsert(
        self, schedule_id: str, task: Any, *, paused: bool | None = None, **fields: Any
    ) -> ScheduleState:
        s = self._build(schedule_id, task, fields)
        (old,) = await store.aread(self.app.aredis, self.app.prefix, [s.id])
        call = store.upsert_call(s, self.app.prefix, old.schedule if old else None, paused)
        await store.arun(self.app.aredis, [call])
        got = await self.aget(s.id)
        assert got is not None
        return got

    async def aget(self, schedule_id: str) -> ScheduleState | None:
        return (await store.aread(self.app.aredis, self.app.prefix, [schedule_id]))[0]

    async def alist(self, after: str = "", limit: int = 1000) -> builtins.list[ScheduleState]:
        ids = await store.alist_ids(self.app.aredis, self.app.prefix, after, limit)
        got = await store.aread(self.app.aredis, self.app.prefix, ids)
        return [s for s in got if s is not None]

    async def _astate(self, schedule_id: str, action: str) -> bool:
        got = await self.aget(schedule_id)
        if got is None:
            return False
        call = store.state_call(got.schedule, self.app.prefix, action)
        changed = bool((await store.arun(self.app.aredis, [call]))[0] == 1)
        if changed:
            await audit.arecord(self.app.aredis, self.app.prefix, f"schedule.{action}", schedule_id)
        return changed

    async def adelete(self, schedule_id: str) -> bool:
        return await self._astate(schedule_id, "delete")

    async def apause(self, schedule_id: str) -> bool:
        return await self._astate(schedule_id, "pause")

    async def aresume(self, schedule_id: str) -> bool:
        return await self._astate(schedule_id, "resume")

    async def atrigger(self, schedule_id: str) -> str:
        got = await self.aget(schedule_id)
        if got is None:
            raise KeyError(f"no schedule {schedule_id!r}")
        (job,) = await self.app.aenqueue_many([_manual(got.schedule)])
        await audit.arecord(self.app.aredis, self.app.prefix, "schedule.trigger", schedule_id)
        return str(job.id)

    async def afire_due(self) -> schedulefire.Fired:
        async def enqueue(calls: list[Call]) -> None:
            await self.app.aenqueue_many(calls)

        return await schedulefire.fire_due(self.app.aredis, self.app.prefix, enqueue)


def _manual(s: Schedule) -> Call:
    job_id = f"schedule-{s.id}-manual-{int(time.time() * 1000)}"
    return Call(s.task, tuple(s.args), dict(s.kwargs), queue=s.queue, job_id=job_id)
