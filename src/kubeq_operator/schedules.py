"""The operator's side of schedules: spec schedules into Redis, firing, pre-warm.

Spec schedules (``spec.schedules``) and the library's runtime schedules are one model
(``kubeq.schedules``) in one due-time index (``kubeq.store.schedules``). Each poll of a
TaskQueue the operator

1. writes its spec schedules into that index when the spec changed (and at least every
   ``SYNC_SECONDS``), as ids ``tq:<namespace>:<taskqueue>:<name>``, and deletes the ids of
   that prefix the spec no longer has (one ZRANGEBYLEX over the name index, no SCAN);
2. fires what is due (``kubeq.store.schedulefire``): every schedule on this Redis and prefix,
   whoever created it; several TaskQueues and operator replicas on one Redis share the work
   through the atomic claim, so each due time is enqueued once; a schedule that cannot fire
   is reported on the TaskQueue that owns it (``Driver.report``), never on the others;
3. reads the pre-warm index: a schedule whose next run is within its ``prewarmSeconds`` and
   whose queue is one of this TaskQueue's asks for ``prewarmReplicas`` workers, a floor the
   decision applies (``prewarm``) and names in its line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

from kubeq.schedules import Schedule, ScheduleError, from_spec
from kubeq.schedules_time import utc_iso
from kubeq.store import schedulefire
from kubeq.store import schedules as store
from kubeq.store.keys import validate_queue_name
from kubeq.store.schedulefire import Enqueue, Fired
from kubeq_operator.policy import Decision, ScalingSpec
from kubeq_operator.specfields import SpecError

log = logging.getLogger("kubeq_operator")

SYNC_SECONDS = 60.0
"""Spec schedules are re-written at least this often (a deleted key heals by itself)."""
FIRE_BATCHES_PER_PASS = 5
"""At most this many claims of ``schedulefire.BATCH`` schedules per pass of one TaskQueue's
loop, so a burst of due schedules never stalls its scaling; the rest fire on the next passes
(and on the other TaskQueues' loops on the same Redis)."""

__all__ = [
    "SYNC_SECONDS",
    "Driver",
    "Fired",
    "fire",
    "forget",
    "forget_deleted",
    "owned",
    "owner_of",
    "parse",
    "prewarm",
    "prewarm_floor",
    "sync",
]


def id_prefix(namespace: str, taskqueue: str) -> str:
    return f"tq:{namespace}:{taskqueue}:"


def parse(spec: Mapping[str, Any], default_queue: str) -> tuple[Schedule, ...]:
    """``spec.schedules`` as the model (ids are the names until ``owned`` qualifies them);
    SpecError names the field."""
    docs = spec.get("schedules") or []
    if not isinstance(docs, list):
        raise SpecError("spec.schedules", f"must be a list, got {type(docs).__name__}")
    out: list[Schedule] = []
    for i, doc in enumerate(docs):
        path = f"spec.schedules[{i}]"
        if not isinstance(doc, dict):
            raise SpecError(path, "must be an object with name, task and cron or every")
        name = doc.get("name")
        if not isinstance(name, str) or not name or any(s.id == name for s in out):
            raise SpecError(f"{path}.name", f"give each schedule a unique name (got {name!r})")
        try:
            out.append(from_spec(doc, path, default_queue=default_queue, owner=""))
            validate_queue_name(out[-1].queue)
        except ScheduleError as e:
            raise SpecError(e.field, str(e).split(": ", 1)[-1]) from None
        except ValueError as e:
            raise SpecError(f"{path}.queue", str(e)) from None
    return tuple(out)


def owned(schedules: tuple[Schedule, ...], namespace: str, taskqueue: str) -> list[Schedule]:
    """The spec's schedules under their Redis ids, ``tq:<namespace>:<taskqueue>:<name>``."""
    own = id_prefix(namespace, taskqueue)
    who = f"taskqueue:{namespace}/{taskqueue}"
    return [replace(s, id=own + s.id, owner=who) for s in schedules]


async def sync(client: Any, prefix: str, wanted: list[Schedule], own: str) -> int:
    """Make the ids under ``own`` exactly ``wanted``; returns how many were deleted."""
    have = await store.aids_with_prefix(client, prefix, own)
    olds = await store.aread(client, prefix, [s.id for s in wanted])
    calls = [
        store.upsert_call(s, prefix, old.schedule if old else None, None)
        for s, old in zip(wanted, olds, strict=True)
        if old is None or old.schedule != s
    ]
    names = {s.id for s in wanted}
    gone = await store.aread(client, prefix, [i for i in have if i not in names])
    calls += [store.state_call(st.schedule, prefix, "delete") for st in gone if st is not None]
    if calls:
        await store.arun(client, calls)
    return len(gone)


async def forget(client: Any, prefix: str, namespace: str, taskqueue: str) -> int:
    """The TaskQueue is deleted: remove its spec schedules; returns how many there were."""
    return await sync(client, prefix, [], id_prefix(namespace, taskqueue))


FORGET_SECONDS = 3.0
"""How long a deleted TaskQueue's loop may take to remove its schedules from Redis (kopf
cancels a daemon that does not end within its ``cancellation_backoff``)."""


async def forget_deleted(
    client_of: Callable[[], Awaitable[Any]], prefix: str, namespace: str, name: str
) -> None:
    """The TaskQueue is deleted: its spec schedules leave Redis with it (logged, no Event:
    the object, maybe its namespace, is going away). ``client_of`` gives its Redis client."""
    try:
        async with asyncio.timeout(FORGET_SECONDS):
            n = await forget(await client_of(), prefix, namespace, name)
    except Exception as e:  # Redis down, its password gone with the namespace...: say so
        log.warning(
            "schedules of deleted TaskQueue %s/%s left in Redis (%s): remove them with "
            "kubeq schedule delete tq:%s:%s:<name>",
            *(namespace, name, describe(e), namespace, name),
        )
        return
    log.info("%s/%s deleted: removed its %d schedule(s) from Redis", namespace, name, n)


def describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return f"no answer within {FORGET_SECONDS:.0f} s"
    return f"{type(e).__name__}: {e}"


async def fire(client: Any, prefix: str, enqueue: Enqueue) -> Fired:
    return await schedulefire.fire_due(client, prefix, enqueue, max_batches=FIRE_BATCHES_PER_PASS)


async def prewarm_floor(
    client: Any, prefix: str, queues: tuple[str, ...], now: float
) -> tuple[int, str]:
    """Workers the schedules about to fire on ``queues`` ask for, and which one asks most."""
    warm = await store.awarm(client, prefix, now)
    if not warm:
        return 0, ""
    states = await store.aread(client, prefix, [i for i, _ in warm])
    best, why = 0, ""
    for st in states:
        if st is None or st.paused or st.next_due is None or st.schedule.queue not in queues:
            continue
        if st.schedule.prewarm_replicas > best:
            best = st.schedule.prewarm_replicas
            why = f"schedule {st.schedule.id} fires at {utc_iso(st.next_due)}"
    return best, why


def prewarm(d: Decision, floor: tuple[int, str], spec: ScalingSpec, current: int) -> Decision:
    """The decision with the schedules' pre-warm floor applied and named in its line."""
    n, why = floor
    if n <= 0 or d.reason in ("RedisError", "Fallback"):
        return d
    target = min(max(n, spec.min_replicas), spec.max_replicas)
    line = f"{d.message} prewarm={target} ({why})"
    if target <= d.replicas:
        return replace(d, message=line)
    direction = "up" if target > current else ("down" if target < current else "none")
    return replace(d, replicas=target, direction=direction, reason="PreWarm", message=line)


def owner_of(schedule_id: str) -> tuple[str, str] | None:
    """(namespace, TaskQueue) whose spec a schedule id comes from; None for a runtime one."""
    parts = schedule_id.split(":", 3)
    if len(parts) == 4 and parts[0] == "tq" and parts[1] and parts[2]:
        return parts[1], parts[2]
    return None


class Driver:
    """The schedules' part of one TaskQueue's loop: sync, fire, pre-warm floor.

    Any loop on a Redis may fire any schedule there, so a schedule's trouble is reported
    where it belongs: a spec schedule's on its own TaskQueue (through that TaskQueue's driver,
    on its next pass: its loop posts only while the TaskQueue lives), a runtime schedule's
    (or one whose TaskQueue this operator does not serve) in the operator's log.
    """

    EVENTS_PER_PASS = 10
    """Events posted per pass for this TaskQueue's own runs and errors (the rest are logged)."""

    _serving: ClassVar[dict[tuple[str, str], Driver]] = {}
    """The drivers of the TaskQueues this process serves, by (namespace, name)."""

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        self.floor: tuple[int, str] = (0, "")
        """What the last pass read from the pre-warm index (``prewarm`` applies it)."""
        self._synced: tuple[tuple[Schedule, ...], float] | None = None
        self._errors: list[str] = []
        """This TaskQueue's schedules' errors met by any loop, posted on its next pass."""
        Driver._serving[self._names] = self

    def close(self) -> None:
        """The TaskQueue's loop ends: its errors are no longer handed to it."""
        if Driver._serving.get(self._names) is self:
            del Driver._serving[self._names]

    def report(self, errors: list[tuple[str, str]]) -> None:
        """Hand each schedule's error to the driver of the TaskQueue that owns it."""
        for sid, message in errors:
            owner = owner_of(sid)
            driver = Driver._serving.get(owner) if owner is not None else None
            if driver is not None:
                if len(driver._errors) < self.EVENTS_PER_PASS:
                    driver._errors.append(message)
                else:
                    log.warning("%s", message)
            elif owner is not None:
                log.warning("%s (TaskQueue %s/%s is not served here)", message, *owner)
            else:
                log.warning("%s", message)

    async def tick(
        self,
        client: Any,
        prefix: str,
        spec_schedules: tuple[Schedule, ...],
        queues: tuple[str, ...],
        enqueue: Enqueue,
        event: Callable[[str, str], None],
        now: float,
    ) -> Fired:
        """One pass; ``event(reason, message)`` posts a Normal Event on the TaskQueue."""
        Driver._serving[self._names] = self
        mono = time.monotonic()
        if (
            self._synced is None
            or self._synced[0] != spec_schedules
            or (mono - self._synced[1] > SYNC_SECONDS)
        ):
            own = id_prefix(self.namespace, self.name)
            deleted = await sync(client, prefix, owned(spec_schedules, *self._names), own)
            if deleted:
                event("SchedulesRemoved", f"removed {deleted} schedule(s) no longer in the spec")
            self._synced = (spec_schedules, mono)
        fired = await fire(client, prefix, enqueue)
        own = id_prefix(self.namespace, self.name)
        mine = [r for r in fired.runs if r[0].startswith(own)]
        for sid, due, job in mine[: self.EVENTS_PER_PASS]:
            event(
                "ScheduleEnqueued",
                f"schedule {sid[len(own) :]}: enqueued the run due {utc_iso(due)} (job {job})",
            )
        self.report(fired.errors)
        errors, self._errors = self._errors, []
        for message in errors:
            event("ScheduleError", message)
        self.floor = await prewarm_floor(client, prefix, queues, now)
        return fired

    @property
    def _names(self) -> tuple[str, str]:
        return self.namespace, self.name
