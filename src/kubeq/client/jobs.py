"""The job handle a caller gets back from ``.delay()`` or ``queue.enqueue()``.

A handle is only (queue, id): it reads Redis when asked, so it can be rebuilt anywhere from
the id (``app.job(id, queue=...)``). ``result()`` watches the job (its ``watch`` key, so the
job's end pushes a done-list) and waits on its done-list with a blocking, non-destructive
BLMOVE, so any number of callers can wait without polling.
Every read and action has an async twin (``astatus``, ``ainfo``, ``aprogress``, ``asteps``,
``ameta``, ``aresult``, ``acancel``, ``aabort``) on the running loop's client
(``App.aredis``); ``edges`` has none yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from typing import Any, cast

from kubeq import serialization
from kubeq.errors import JobAborted, JobCancelled, JobExpired, JobFailed, JobNotFound, ResultTimeout
from kubeq.store.backend import Backend
from kubeq.store.jobfields import JOB_FIELDS, RESULT_FIELDS, JobInfo, Status, stored_json, text
from kubeq.store.keys import WATCH_SECONDS, QueueKeys
from kubeq.store.scripts import LUA, ScriptCall, run_pipeline, run_pipeline_async
from kubeq.workflows.edges import Edges, read_edges

_BLOCK_SECONDS = 5.0
"""The longest single blocking wait of ``result``: below the client's socket timeout."""


class Job:
    """A handle on one enqueued job (slotted: a bulk enqueue returns one per job)."""

    __slots__ = ("app", "created", "id", "queue")

    def __init__(self, app: Backend, queue: str, job_id: str, created: bool | None = None) -> None:
        self.app = app
        self.queue = queue
        self.id = job_id
        self.created = created
        """True when the enqueue that returned this handle created the job; False when a job
        of that id already existed (a live one, or any for a callback's hand-off) and was
        kept; None for a handle that no enqueue returned (``app.job(id)``). It holds when
        the client sent the call again after losing its reply: the first send's jobs count
        as created by the call, and are never written again."""

    @property
    def _keys(self) -> QueueKeys:
        return QueueKeys.of(self.queue, self.app.prefix)

    def __repr__(self) -> str:
        return f"<Job {self.id} queue={self.queue}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and (other.queue, other.id) == (self.queue, self.id)

    def __hash__(self) -> int:
        return hash((self.queue, self.id))

    def status(self) -> Status:
        """The job's current status; ``unknown`` once its result has expired."""
        # the casts of this class: redis-py before 8.0 types a reply as "T | Awaitable[T]"
        raw = cast("bytes | None", self.app.redis.hget(self._keys.job(self.id), "status"))
        return text(raw) or "unknown"  # type: ignore[return-value]

    async def astatus(self) -> Status:
        """``status`` for async code."""
        raw = await cast(
            "Awaitable[bytes | None]", self.app.aredis.hget(self._keys.job(self.id), "status")
        )
        return text(raw) or "unknown"  # type: ignore[return-value]

    def info(self) -> JobInfo:
        """Everything stored about the job."""
        values = cast("list[Any]", self.app.redis.hmget(self._keys.job(self.id), list(JOB_FIELDS)))
        return JobInfo.from_fields(self.id, self.queue, values)

    async def ainfo(self) -> JobInfo:
        """``info`` for async code."""
        values = await cast(
            "Awaitable[list[Any]]", self.app.aredis.hmget(self._keys.job(self.id), list(JOB_FIELDS))
        )
        return JobInfo.from_fields(self.id, self.queue, values)

    def edges(self) -> Edges:
        """The job's place in its workflow: its parents (``depends_on``, the job a callback
        follows, a chord's members) and children (dependents, callbacks), each with its
        status now. ``kubeq job ID`` prints them."""
        return read_edges(self.app, self.queue, self.id)

    def progress(self) -> Any:
        """What the task last reported with ``current_job().set_progress`` (None before it
        reported any). Kept after the job ends, for its result TTL."""
        raw = cast("bytes | None", self.app.redis.hget(self._keys.job(self.id), "progress"))
        return stored_json(raw, None)

    async def aprogress(self) -> Any:
        """``progress`` for async code."""
        raw = await cast(
            "Awaitable[bytes | None]", self.app.aredis.hget(self._keys.job(self.id), "progress")
        )
        return stored_json(raw, None)

    def steps(self) -> dict[str, Any]:
        """The job's recorded durable steps, name -> decoded JSON record (``kubeq.step``;
        a sleep or a wait is ``~sleep:<n>`` / ``~wait:<key>``); kept for the job's result TTL."""
        found = self.app.redis.hscan_iter(self._keys.job(self.id), match="step:*")
        return _steps(list(found))

    async def asteps(self) -> dict[str, Any]:
        """``steps`` for async code."""
        key = self._keys.job(self.id)
        return _steps([pair async for pair in self.app.aredis.hscan_iter(key, match="step:*")])

    def meta(self) -> dict[str, Any]:
        """What the task stored with ``current_job().update_meta`` ({} before any)."""
        raw = cast("bytes | None", self.app.redis.hget(self._keys.job(self.id), "meta"))
        result: dict[str, Any] = stored_json(raw, {})
        return result

    async def ameta(self) -> dict[str, Any]:
        """``meta`` for async code."""
        raw = await cast(
            "Awaitable[bytes | None]", self.app.aredis.hget(self._keys.job(self.id), "meta")
        )
        result: dict[str, Any] = stored_json(raw, {})
        return result

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job to end and return its result.

        Raises ResultTimeout after ``timeout`` seconds (None waits for ever), JobFailed when
        the job ended in the dead letters, JobCancelled, JobAborted, JobExpired, or
        JobNotFound.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        keys = self._keys
        key, done, watch = keys.job(self.id), keys.done(self.id), keys.watch(self.id)
        while True:
            # watch first, then read: a job that ends after the read pushes its done-list
            pipe = self.app.redis.pipeline(transaction=False)
            pipe.set(watch, b"1", ex=WATCH_SECONDS)
            pipe.hmget(key, RESULT_FIELDS)
            fields = cast("list[Any]", pipe.execute()[1])
            ended, value = self._ended(fields)
            if ended:
                return value
            wait = self._wait(deadline, timeout, value)
            # Non-destructive wait: the token goes back where it was, for other waiters.
            self.app.redis.blmove(done, done, wait, "RIGHT", "LEFT")  # type: ignore[arg-type]

    async def aresult(self, timeout: float | None = None) -> Any:
        """``result`` for async code: blocks on Redis (BLMOVE on the loop's own client),
        never polls; cancelling the awaiting task stops the wait. ``timeout`` also bounds
        the wait for a free connection of the loop's pool."""
        if timeout is None:
            return await self._aresult(None, None)
        try:
            async with asyncio.timeout(timeout + _BLOCK_SECONDS):
                return await self._aresult(time.monotonic() + timeout, timeout)
        except TimeoutError as exc:
            if isinstance(exc, ResultTimeout):
                raise
            raise ResultTimeout(f"job {self.id} did not end within {timeout} s") from None

    async def _aresult(self, deadline: float | None, timeout: float | None) -> Any:
        keys = self._keys
        key, done, watch = keys.job(self.id), keys.done(self.id), keys.watch(self.id)
        client = self.app.aredis
        while True:
            pipe = client.pipeline(transaction=False)
            pipe.set(watch, b"1", ex=WATCH_SECONDS)
            pipe.hmget(key, RESULT_FIELDS)
            fields = (await pipe.execute())[1]
            ended, value = self._ended(fields)
            if ended:
                return value
            wait = self._wait(deadline, timeout, value)
            await client.blmove(done, done, wait, "RIGHT", "LEFT")  # type: ignore[arg-type]

    def _ended(self, fields: Sequence[Any]) -> tuple[bool, Any]:
        """(True, result) when the job has ended well; raises when it ended otherwise;
        (False, status) while it has not ended."""
        status, result, error, reason, tb = fields
        if status == b"finished":
            return True, serialization.loads(result or b"null")
        if status == b"failed":
            raise JobFailed(self.id, text(reason), text(error), text(tb))
        if status == b"cancelled":
            raise JobCancelled(f"job {self.id} was cancelled")
        if status == b"aborted":
            raise JobAborted(f"job {self.id} was aborted")
        if status == b"expired":
            raise JobExpired(f"job {self.id} expired before it started")
        if status is None:
            raise JobNotFound(f"no job {self.id} in queue {self.queue!r} (or it expired)")
        return False, status

    def _wait(self, deadline: float | None, timeout: float | None, status: Any) -> float:
        """Seconds of the next blocking wait, or ResultTimeout once the deadline passed."""
        wait = _BLOCK_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                raise ResultTimeout(
                    f"job {self.id} did not end within {timeout} s (status {text(status)})"
                )
        return max(wait, 0.01)

    def cancel(self) -> bool:
        """Cancel the job if it has not started. True when cancelled; False if it is
        running or has ended (a running job is never interrupted)."""
        found = self.app.scripts.cancel(
            keys=self._keys.script_keys, args=[self._keys.base, self.id]
        )
        return self._cancelled(found)

    async def acancel(self) -> bool:
        """``cancel`` for async code."""
        call = (LUA["cancel"], self._keys.script_keys, [self._keys.base, self.id])
        (found,) = await run_pipeline_async(self.app.aredis, [call])
        return self._cancelled(found)

    def _cancelled(self, found: Any) -> bool:
        if found == -1:
            raise JobNotFound(f"no job {self.id} in queue {self.queue!r}")
        return bool(found == 1)

    def abort(self) -> bool:
        """Stop the job: one that has not started never runs; a running one ends ``aborted``
        at once and its worker stops it within one heartbeat (an async task is cancelled, a
        process child killed, a thread task sees ``current_job().aborted``). No retry
        follows, and the aborted attempt's late result is refused. An item of a batch ends
        ``aborted`` on its own: its batch's run goes on, and its answer for the item is not
        recorded (docs/patterns.md). True when aborted; False if it had already ended."""
        found = self.app.scripts.abort(keys=self._keys.script_keys, args=[self._keys.base, self.id])
        if found == 0:  # not a job abort.lua stops: perhaps an item of a batch
            (found,) = run_pipeline(self.app.redis, [self._abort_item()])
        return self._aborted(found)

    async def aabort(self) -> bool:
        """``abort`` for async code."""
        call = (LUA["abort"], self._keys.script_keys, [self._keys.base, self.id])
        (found,) = await run_pipeline_async(self.app.aredis, [call])
        if found == 0:
            (found,) = await run_pipeline_async(self.app.aredis, [self._abort_item()])
        return self._aborted(found)

    def _abort_item(self) -> ScriptCall:
        return (LUA["abort_item"], self._keys.script_keys, [self._keys.base, self.id])

    def _aborted(self, found: Any) -> bool:
        if found == -1:
            raise JobNotFound(f"no job {self.id} in queue {self.queue!r}")
        return bool(found in (1, 2))


def _steps(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Step records from the job hash's ``step:<name>`` fields, sorted by name."""
    return dict(sorted((text(name)[5:], stored_json(raw, None)) for name, raw in pairs))
