"""Callbacks (``on_success=`` / ``on_failure=``): how a signature travels with its job.

A callback is a ``Call`` (``notify.s(...)``) given per task (``@app.task(on_success=...)``)
or per call (``apply_async(on_success=...)``). At enqueue it is validated in the caller and
encoded as JSON into the job's hash (``enqueue.lua``, fields ``on_success`` / ``on_failure``
and the marker ``cb``); the worker never trusts more than that JSON: the callback it enqueues
still names a task, which its own worker runs only if registered. This module is pure: the
encoding, its inverse, the derived id of a callback job, and the Call a finished or failed
parent turns into. The hand-off itself (durable, idempotent, across hash slots) is
``handoff.py``; docs/architecture.md, Decisions, Workflows, explains it.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields
from datetime import datetime
from typing import Any

from kubeq import serialization
from kubeq.errors import SerializationError
from kubeq.options import Call, RateLimit
from kubeq.store.keys import validate_job_id

__all__ = ["callback_id", "decode_callback", "encode_callback", "follow_up"]

_PLAIN = (
    "queue",
    "priority",
    "delay",
    "timeout",
    "result_ttl",
    "max_attempts",
    "backoff_min",
    "backoff_max",
    "max_deliveries",
    "limit_key",
    "fair_key",
    "concurrency_limit",
    "expires",
    "soft_timeout",
    "immutable",
    "partition_key",
    "pin_version",
    "version",
)
KINDS = ("on_success", "on_failure")


def encode_callback(call: object, where: str) -> dict[str, Any]:
    """The JSON-ready form of a callback signature, or an error naming ``where``."""
    if not isinstance(call, Call):
        raise TypeError(
            f"{where} must be a task signature such as notify.s() or notify.si(...), got {call!r}"
        )
    if call.job_id is not None:
        raise ValueError(f"{where}: a callback's job id is derived from its parent's; drop job_id=")
    if call.eta is not None or isinstance(call.expires, datetime):
        raise ValueError(
            f"{where}: give a callback delay= and expires= in seconds (relative to when it is "
            "enqueued), not an absolute time"
        )
    if call.worker_pool is not None:
        raise ValueError(
            f"{where}: a callback is enqueued by the worker, which does not route to worker "
            f"pools; drop worker_pool= and give the pool's queue instead, e.g. "
            f"queue='default@{call.worker_pool}'"
        )
    out: dict[str, Any] = {"task": call.task, "args": list(call.args), "kwargs": call.kwargs}
    for name in _PLAIN:
        value = getattr(call, name)
        if value is not None and value is not False:
            out[name] = value
    if call.rate_limit is not None:
        rl = call.rate_limit
        out["rate_limit"] = [rl.count, rl.period_ms, rl.burst]
    for kind in KINDS:
        nested = getattr(call, kind)
        if nested is not None:
            out[kind] = encode_callback(nested, f"{where}.{kind}")
    try:
        serialization.dumps(out)
    except TypeError as exc:
        raise SerializationError(
            f"{where}: the callback {call.task!r} has an argument that is not JSON ({exc})"
        ) from None
    return out


def decode_callback(data: dict[str, Any]) -> Call:
    """The Call of an encoded callback; ValueError when it is malformed (written by hand)."""
    if not isinstance(data, dict) or not isinstance(data.get("task"), str):
        raise ValueError(f"malformed callback: expected an object with a task, got {data!r}")
    known = {f.name for f in fields(Call)}
    options: dict[str, Any] = {n: data[n] for n in _PLAIN if n in data and n in known}
    if "rate_limit" in data:
        count, period_ms, burst = data["rate_limit"]
        options["rate_limit"] = RateLimit(int(count), int(period_ms), int(burst))
    for kind in KINDS:
        if kind in data:
            options[kind] = decode_callback(data[kind])
    args, kwargs = data.get("args", []), data.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError("malformed callback: args must be a list and kwargs an object")
    return Call(data["task"], tuple(args), kwargs, **options)


def callback_id(parent_id: str, kind: str) -> str:
    """The id of the job a parent's callback becomes: derived, so enqueueing it twice (a
    hand-off redone after a crash) finds the first one."""
    candidate = f"{parent_id}.{'s' if kind == 'on_success' else 'f'}"
    if len(candidate) > 200:
        candidate = hashlib.sha1(candidate.encode()).hexdigest() + candidate[-1]
    return validate_job_id(candidate)


def follow_up(
    parent_id: str,
    status: str,
    result: bytes | None,
    error: str,
    encoded: dict[str, bytes | None],
) -> Call | None:
    """The Call a parent's end turns into: its on_success with the result as first argument
    (unless the signature is immutable, ``.si()``), its on_failure with the parent's id and
    error first; None when nothing follows (no callback of that kind, or another status)."""
    if status == "finished":
        kind = "on_success"
    elif status == "failed":
        kind = "on_failure"
    else:
        return None
    raw = encoded.get(kind)
    if not raw:
        return None
    call = decode_callback(serialization.loads(raw))
    if not call.immutable:
        first: tuple[Any, ...]
        if kind == "on_success":
            first = (serialization.loads(result or b"null"),)
        else:
            first = (parent_id, error)
        call = call.set(args=(*first, *call.args))
    return call.set(job_id=callback_id(parent_id, kind))
