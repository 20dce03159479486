"""Durable steps, sleeps and waits inside a task (docs/durable.md).

``step(name, fn, *args)`` runs ``fn`` once per job: its JSON result is recorded in the job's
hash (``step:<name>``, by ``step.lua``, fenced by the attempt's lease token), and every later
run of the same job (a retry, a delivery after a crash or a hand-back, a continuation after
a sleep or a wait) gets the recorded result back without running ``fn``.

``sleep(seconds)`` and ``wait_for(key)`` end the run: ``suspend.lua`` moves the job out of
``active`` into ``sleeping`` (freeing the worker's slot and any concurrency slot, counting no
attempt), then ``JobSuspended`` unwinds the task and the worker forgets the delivery. The job
runs again from the start when its sleep is due, when a signal on ``key`` arrives
(``signal``, ``signal.lua``) or when the wait times out; the steps and the sleep or wait that
already happened return their records, so the run goes on where it stopped. Code between
steps runs again on each continuation: only step results are recorded.

Outside a worker's connection (a context without a Redis URL: eager mode, a unit test) steps
are kept in the context, sleeps return at once, and a wait returns a payload from
``LOCAL_SIGNALS`` or times out at once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Callable
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, TypeVar, cast, overload

from kubeq import defaults, serialization
from kubeq.client.context import JobContext, current_job
from kubeq.errors import JobSuspended, LeaseLost, StepTooLarge, WaitTimeout
from kubeq.store import connections
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, ScriptCall, run_pipeline, run_pipeline_async

__all__ = ["LOCAL_SIGNALS", "asleep", "astep", "await_for", "sleep", "step", "wait_for"]

LOCAL_SIGNALS: dict[str, Any] = {}
"""Signal payloads by key for waits in a context without Redis (eager mode, unit tests)."""

MAX_NAME = 200
MAX_KEY = 512
MAX_SECONDS = 366 * 86_400
F = TypeVar("F", bound=Callable[..., Any])
_NO_FN: Any = object()
_IN_STEP: ContextVar[bool] = ContextVar("kubeq_in_step", default=False)
"""True while a step's function runs: a decorated step called there is a plain call."""


def _name(name: object, what: str = "step name") -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or name.startswith("~"):
        raise ValueError(
            f"a {what} must be a non-empty str of at most {MAX_NAME} characters, not starting "
            f"with '~' (kept for kubeq's own records), got {name!r}"
        )
    return name


def _signal_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise ValueError(
            f"a signal key must be a non-empty str of at most {MAX_KEY} characters "
            f"(e.g. 'shipment:' + order_id), got {key!r}"
        )
    return key


def _seconds(value: object, what: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise TypeError(f"{what} must be a number of seconds or a timedelta, got {value!r}")
    if not 0 <= value <= MAX_SECONDS:
        raise ValueError(f"{what} must be 0 to 366 days in seconds, got {value}")
    return float(value)


def _encode(value: Any, what: str) -> str:
    try:
        text = serialization.dumps(value).decode()
    except TypeError as exc:
        raise TypeError(f"{what} must be JSON (dict, list, str, number, bool, None): {exc}") from (
            None
        )
    if len(text) > defaults.MAX_STEP_BYTES:
        raise StepTooLarge(
            f"{what} is {len(text)} bytes as JSON, over the limit of {defaults.MAX_STEP_BYTES} "
            "(defaults.MAX_STEP_BYTES): record a reference (an object key, a row id) instead"
        )
    return text


def _job_key(ctx: JobContext) -> str:
    return f"{ctx.base}job:{ctx.id}"


def _queue_keys(ctx: JobContext) -> QueueKeys:
    prefix = ctx.base[: len(ctx.base) - len(ctx.queue) - 4]  # base = prefix:{queue}:
    return QueueKeys.of(ctx.queue, prefix)


def _local(ctx: JobContext) -> dict[str, Any]:
    steps: dict[str, Any] = ctx.durable.setdefault("steps", {})
    return steps


def _recorded(ctx: JobContext, field: str) -> tuple[bool, Any]:
    """(found, value) of the step record ``field`` of the job."""
    if not ctx.base:
        steps = _local(ctx)
        return (field in steps, steps.get(field))
    raw = cast(
        "bytes | None",
        connections.shared_client(ctx.redis_url).hget(_job_key(ctx), f"step:{field}"),
    )
    if raw is None:
        return (False, None)
    return (True, serialization.loads(raw))


def _too_many(ctx: JobContext, field: str) -> StepTooLarge:
    return StepTooLarge(
        f"job {ctx.id}: recording {field!r} would take its step records over "
        f"{defaults.MAX_STEPS_BYTES} bytes (defaults.MAX_STEPS_BYTES): record references "
        "(object keys, row ids) instead of data"
    )


def _lease_lost(ctx: JobContext, field: str) -> LeaseLost:
    return LeaseLost(
        f"job {ctx.id}: {field!r} was not recorded because this attempt no longer holds the "
        "job (its lease was taken over, or it was aborted or has ended)"
    )


def _record(ctx: JobContext, field: str, text: str) -> None:
    if not ctx.base:
        _local(ctx)[field] = serialization.loads(text)
        return
    args = [ctx.lease, field, text, defaults.MAX_STEP_BYTES, defaults.MAX_STEPS_BYTES]
    call: ScriptCall = (LUA["step"], [_job_key(ctx)], args)
    (done,) = run_pipeline(connections.shared_client(ctx.redis_url), [call])
    if int(done) == 0:
        raise _lease_lost(ctx, field)
    if int(done) == -1:
        raise _too_many(ctx, field)


def _step(ctx: JobContext, field: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    found, value = _recorded(ctx, field)
    if found:
        return value
    token = _IN_STEP.set(True)
    try:
        result = fn(*args, **kwargs)
    finally:
        _IN_STEP.reset(token)
    text = _encode(result, f"the result of step {field!r}")
    _record(ctx, field, text)
    return serialization.loads(text)


async def _astep(
    ctx: JobContext, field: str, fn: Callable[..., Any], args: Any, kwargs: Any
) -> Any:
    found, value = await asyncio.to_thread(_recorded, ctx, field)
    if found:
        return value
    token = _IN_STEP.set(True)
    try:
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
    finally:
        _IN_STEP.reset(token)
    text = _encode(result, f"the result of step {field!r}")
    await asyncio.to_thread(_record, ctx, field, text)
    return serialization.loads(text)


@overload
def step(name: str, /) -> Callable[[F], F]: ...
@overload
def step(fn: F, /) -> F: ...
@overload
def step(name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...
def step(name: Any, fn: Any = _NO_FN, /, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` once for this job and record its JSON result as step
    ``name``; when the job runs again (retry, crash, hand-back, after a sleep or a wait) the
    recorded result is returned without running ``fn``. Returns the result as JSON reads it
    back (a tuple comes back as a list), the same on every run. A crash after ``fn`` and
    before the record runs ``fn`` again: make its side effect idempotent (for example with
    ``f"{current_job().id}:{name}"`` as the idempotency key).

    As a decorator, ``@kubeq.step("charge")`` (or bare ``@kubeq.step``: the function's
    ``__qualname__``) makes every call of the function inside a task a step (``astep`` for
    a coroutine function): the run's first call is step ``charge``, its second ``charge#2``,
    and so on in the order of the calls. Outside a task, and inside another step (whose
    record holds the outcome), the function runs as a plain call."""
    if fn is _NO_FN:
        if callable(name):
            return _decorate(name.__qualname__, name)
        base = _name(name)
        return lambda f: _decorate(base, f)
    ctx = current_job(required=True)
    return _step(ctx, _name(name), fn, args, kwargs)


async def astep(name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``step`` for an ``async def`` task: ``fn`` may be a coroutine function."""
    ctx = current_job(required=True)
    return await _astep(ctx, _name(name), fn, args, kwargs)


def _numbered(ctx: JobContext, base: str) -> str:
    """The step name of this run's next call of a decorated function: ``base``, then
    ``base#2``, ``base#3``..."""
    calls: dict[str, int] = ctx.durable.setdefault("calls", {})
    n = calls.get(base, 0) + 1
    calls[base] = n
    return base if n == 1 else f"{base}#{n}"


def _decorate(base: str, fn: F) -> F:
    if not callable(fn):
        raise TypeError(f"@kubeq.step({base!r}) decorates a function, got {fn!r}")
    if len(base) > MAX_NAME - 8:
        raise ValueError(
            f"a decorated step's name must be at most {MAX_NAME - 8} characters (room for its "
            f"call number), got {len(base)}: pass a shorter one, @kubeq.step('name')"
        )
    _name(base)
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def arun(*args: Any, **kwargs: Any) -> Any:
            ctx = current_job()
            if ctx is None or _IN_STEP.get():
                return await fn(*args, **kwargs)
            return await _astep(ctx, _numbered(ctx, base), fn, args, kwargs)

        return cast("F", arun)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = current_job()
        if ctx is None or _IN_STEP.get():
            return fn(*args, **kwargs)
        return _step(ctx, _numbered(ctx, base), fn, args, kwargs)

    return cast("F", run)


def _next(ctx: JobContext, kind: str) -> int:
    n = int(ctx.durable.get(kind, 0)) + 1
    ctx.durable[kind] = n
    return n


def _suspend(ctx: JobContext, kind: str, field: str, due_ms: int | None, key: str) -> Any:
    """Run suspend.lua; returns the wait's record when it needs no suspension, else raises
    JobSuspended."""
    due = "" if due_ms is None else f"+{due_ms}"
    keys = _queue_keys(ctx)
    args = [keys.base, ctx.id, ctx.lease, kind, field, due, key, defaults.MAX_STEPS_BYTES]
    call: ScriptCall = (LUA["suspend"], keys.script_keys, args)
    (reply,) = run_pipeline(connections.shared_client(ctx.redis_url), [call])
    flag = int(reply[0])
    if flag == 2:
        return serialization.loads(reply[1])
    if flag == 0:
        raise _lease_lost(ctx, field)
    if flag == -1:
        raise _too_many(ctx, field)
    what = f"sleeping {due_ms / 1000:g} s" if kind == "sleep" and due_ms is not None else ""
    if kind == "wait":
        what = f"waiting for signal {key!r}" + (f" ({due_ms / 1000:g} s)" if due_ms else "")
    raise JobSuspended(ctx.id, f"{what} ({field})")


def sleep(seconds: float | timedelta, *, name: str | None = None) -> None:
    """Sleep durably: end this run, free the worker, and continue the job after ``seconds``
    (from the start of the task, its recorded steps returning their results). Each sleep of
    a run is its own step (``~sleep:1``, ``~sleep:2``... or ``~sleep:<name>``), so a run that
    already slept passes it at once. Not an attempt: it counts against no ``max_attempts``."""
    ctx = current_job(required=True)
    delay = _seconds(seconds, "kubeq.sleep(seconds)")
    n = _next(ctx, "sleeps")
    field = f"~sleep:{_name(name, 'sleep name') if name is not None else n}"
    found, _ = _recorded(ctx, field)
    if found:
        return
    if not ctx.base:
        _local(ctx)[field] = {"until": 0}
        return
    _suspend(ctx, "sleep", field, round(delay * 1000), "")


async def asleep(seconds: float | timedelta, *, name: str | None = None) -> None:
    """``sleep`` for an ``async def`` task."""
    current_job(required=True)
    await asyncio.to_thread(sleep, seconds, name=name)  # to_thread copies the context


def _outcome(record: Any, key: str, field: str) -> Any:
    if isinstance(record, dict) and "signal" in record:
        return record["signal"]
    raise WaitTimeout(key, field)


def wait_for(key: str, *, timeout: float | timedelta | None = None, name: str | None = None) -> Any:
    """Wait durably for a signal on ``key`` (``app.signal(key, payload)``, ``kubeq signal``)
    and return its payload. If the signal was sent already (and is still kept: its TTL), it
    returns at once; otherwise the run ends, the job holds no worker, and it continues when
    the signal arrives (this call then returns its payload) or after ``timeout`` seconds
    (this call then raises ``kubeq.WaitTimeout``, which the task may catch). The wait is the
    step ``~wait:<key>`` (or ``~wait:<name>``): a job that waits twice on one key gives each
    wait its own ``name``."""
    ctx = current_job(required=True)
    sig = _signal_key(key)
    due = None if timeout is None else round(_seconds(timeout, "wait_for(timeout=)") * 1000)
    field = f"~wait:{_name(name, 'wait name') if name is not None else sig}"
    found, record = _recorded(ctx, field)
    if found:
        return _outcome(record, sig, field)
    if not ctx.base:
        record = {"signal": LOCAL_SIGNALS[sig]} if sig in LOCAL_SIGNALS else {"timeout": True}
        _local(ctx)[field] = record
        return _outcome(record, sig, field)
    return _outcome(_suspend(ctx, "wait", field, due, sig), sig, field)


async def await_for(
    key: str, *, timeout: float | timedelta | None = None, name: str | None = None
) -> Any:
    """``wait_for`` for an ``async def`` task."""
    current_job(required=True)
    return await asyncio.to_thread(wait_for, key, timeout=timeout, name=name)


# -- sending signals (App.signal, Queue.signal, kubeq signal) -----


def signal_calls(
    parts: list[QueueKeys], key: str, payload: Any, mode: str, ttl: float | None
) -> list[ScriptCall]:
    """The signal.lua calls that deliver ``payload`` on ``key`` to every partition."""
    sig = _signal_key(key)
    if mode not in ("all", "one"):
        raise ValueError(f"signal mode must be 'all' or 'one', got {mode!r}")
    if mode == "one" and len(parts) > 1:
        raise ValueError(
            "signal mode 'one' is not available on a partitioned queue (each partition would "
            "wake one job); use mode 'all', or a queue without partitions for the waits"
        )
    keep = defaults.SIGNAL_TTL_SECONDS if ttl is None else _seconds(ttl, "signal ttl")
    text = _encode(payload, f"the payload of signal {sig!r}")
    return [(LUA["signal"], k.script_keys, [k.base, sig, text, int(keep), mode]) for k in parts]


def send_signal(client: Any, calls: list[ScriptCall]) -> int:
    """Send signal calls in one round trip; returns how many jobs woke."""
    return sum(int(n) for n in run_pipeline(client, calls))


async def asend_signal(client: Any, calls: list[ScriptCall]) -> int:
    """``send_signal`` on an asyncio client."""
    return sum(int(n) for n in await run_pipeline_async(client, calls))
