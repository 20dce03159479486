"""JSON on the wire, and nothing else: no pickle, no code in payloads.

Arguments are checked in the caller, at enqueue, so a bad argument fails where it can be
fixed, with its name in the message. Only plain JSON types pass (str, int, float, bool,
None, list/tuple, dict with str keys): datetimes, sets, dataclasses and other objects are
refused rather than silently turned into something else on the worker's side.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from kubeq.errors import SerializationError

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _refuse(obj: Any) -> Any:
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    """Encode plain JSON types; raise TypeError (orjson.JSONEncodeError) for anything else,
    NaN and ±Infinity included (JSON has no such numbers; orjson would write null).

    The bytes are copied to their own size: orjson returns its whole write buffer (4 KB at
    least, even for ``null``), and a payload or result is often held until its round trip
    (a bulk enqueue's payloads, a worker's results waiting for their acknowledgement)."""
    if obj is None:  # the most common result: a task that returns nothing
        return b"null"
    data = bytes(memoryview(orjson.dumps(obj, default=_refuse, option=_OPTIONS)))
    if b"null" in data:  # the only way a non-finite float shows; rare, so the walk is too
        bad = _non_finite(obj)
        if bad is not None:
            raise TypeError(f"{bad!r} is not a JSON number (NaN and Infinity are refused)")
    return data


def _non_finite(obj: Any) -> float | None:
    if isinstance(obj, float):
        return None if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        obj = obj.values()
    elif not isinstance(obj, list | tuple):
        return None
    for value in obj:
        bad = _non_finite(value)
        if bad is not None:
            return bad
    return None


def loads(data: bytes | str) -> Any:
    """Decode JSON; raise ValueError (orjson.JSONDecodeError) on malformed input."""
    return orjson.loads(data)


_HINT = (
    "pass JSON types only (str, int, float, bool, None, list, dict with str keys); "
    "convert other values first, e.g. a datetime with .isoformat()"
)


def encode_call(
    task: str,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    options: dict[str, Any] | None = None,
    trace: dict[str, str] | None = None,
) -> bytes:
    """The payload of one job, or SerializationError naming the argument that can't be sent.

    ``options`` carries the per-call overrides the worker applies (timeout, retry policy);
    ``trace`` the caller's W3C trace context (``traceparent``, ``tracestate``), present only
    when OpenTelemetry is installed and a span is active (see ``tracing``).
    """
    if type(args) is not tuple and type(args) is not list:  # orjson writes those two as is
        args = list(args)
    body: dict[str, Any] = {"task": task}
    if args:  # empty arguments are left out: a reader takes a missing one as [] or {}
        body["args"] = args
    if kwargs:
        body["kwargs"] = kwargs
    if options:
        body["options"] = options
    if trace:
        body["trace"] = trace
    try:
        return dumps(body)
    except TypeError:
        pass
    for index, value in enumerate(args):
        try:
            dumps(value)
        except TypeError as exc:
            raise SerializationError(
                f"argument {index} of task {task!r} ({type(value).__name__}) is not "
                f"JSON-serializable: {exc}; {_HINT}"
            ) from None
    for name, value in kwargs.items():
        if not isinstance(name, str):
            raise SerializationError(f"keyword argument names of {task!r} must be str")
        try:
            dumps(value)
        except TypeError as exc:
            raise SerializationError(
                f"argument {name!r} of task {task!r} ({type(value).__name__}) is not "
                f"JSON-serializable: {exc}; {_HINT}"
            ) from None
    raise SerializationError(f"the arguments of task {task!r} are not JSON-serializable; {_HINT}")


def decode_call(
    payload: bytes | str,
) -> tuple[str, list[Any], dict[str, Any], dict[str, Any]]:
    """Decode a job payload, or ValueError saying what is malformed (the job is dead-lettered)."""
    try:
        body = loads(payload)
    except ValueError as exc:
        raise ValueError(f"malformed payload: not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ValueError("malformed payload: expected a JSON object with task, args, kwargs")
    task, args, kwargs = body.get("task"), body.get("args", []), body.get("kwargs", {})
    if not isinstance(task, str) or not task:
        raise ValueError("malformed payload: 'task' must be a non-empty string")
    if not isinstance(args, list):
        raise ValueError("malformed payload: 'args' must be a JSON array")
    if not isinstance(kwargs, dict):
        raise ValueError("malformed payload: 'kwargs' must be a JSON object")
    options = body.get("options", {})
    if not isinstance(options, dict):
        raise ValueError("malformed payload: 'options' must be a JSON object")
    return task, args, kwargs, options
