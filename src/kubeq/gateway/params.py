"""The query parameters of the gateway's routes, each checked on its own and named when bad:
``queue`` (a job's queue, when not the TaskQueue's first), ``wait`` (seconds a result request
blocks, 0 to ``MAX_WAIT``) and ``abort`` (``true`` or ``false``). A parameter a route does
not take is refused too, so a typo (``?wiat=10``) is not silently ignored. ``job_id`` checks
the ``{id}`` of a job's path the same way."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubeq.gateway.kube import Refused
from kubeq.store.keys import validate_job_id, validate_queue_name

MAX_WAIT = 60.0
"""The longest ``?wait=`` of a result request, in seconds."""

_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


@dataclass(frozen=True)
class Params:
    queue: str | None = None
    wait: float = 0.0
    abort: bool = False


def _queue(raw: str) -> str:
    name, _, partition = raw.partition("#")
    validate_queue_name(name)
    if _ and not partition.isdigit():
        raise ValueError(f"queue {raw!r}: a partition is '#' and a number")
    return raw


def _wait(raw: str) -> float:
    try:
        wait = float(raw)
    except ValueError:
        raise ValueError(f"wait must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(wait) or not 0 <= wait <= MAX_WAIT:
        raise ValueError(f"wait must be 0 to {MAX_WAIT:g} seconds, got {raw!r}")
    return wait


def _abort(raw: str) -> bool:
    value = _BOOLEANS.get(raw.lower())
    if value is None:
        raise ValueError(f"abort must be true or false, got {raw!r}")
    return value


_PARSERS = {"queue": _queue, "wait": _wait, "abort": _abort}


def query(given: Mapping[str, str], allowed: Iterable[str]) -> Params:
    """The route's parameters from ``given``; Refused(400) naming the first bad one."""
    allowed = tuple(allowed)
    values: dict[str, object] = {}
    for name in given:
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            reason = f"unknown query parameter {name!r} (this route takes: {known})"
            raise Refused(400, reason, name)
        try:
            values[name] = _PARSERS[name](given[name])
        except ValueError as exc:
            raise Refused(400, str(exc), name) from None
    return Params(**values)  # type: ignore[arg-type]


def job_id(raw: str) -> str:
    """The ``{id}`` of a job's path; Refused(400) naming ``id`` when it cannot be one."""
    try:
        return validate_job_id(raw)
    except ValueError as exc:
        raise Refused(400, str(exc), "id") from None
