"""What a chord's callback receives: its members' results, in order, read by the worker that
runs the callback (``chord_of`` in the callback's payload names the members).

Each member's result is kept in the callback's own hash (``r:<queue>/<id>``) when the member
resolves it (``resolve.lua``, with how it ended in ``p:<queue>/<id>``), so the callback gets it
however soon the member's own record expires. A member resolved without its result kept (by
an older version) is read from its own hash; one whose record is gone too raises
``ChordResultLost``: a callback never receives None for a member that finished. A Redis
outage while reading is retried a few times here, then raised for the worker's retry policy.
"""

from __future__ import annotations

import time
from typing import Any

from kubeq import serialization
from kubeq.store import connections
from kubeq.store.cluster import is_outage
from kubeq.store.keys import QueueKeys

__all__ = ["ChordResultLost", "chord_results"]

_TRIES = (0.1, 0.3, 1.0)
"""Pauses between the reads of a chord's results that met an outage (then it is raised)."""


class ChordResultLost(ValueError):
    """A member that finished left no result the callback can read."""


def chord_results(
    redis_url: str, prefix: str, members: Any, job_key: str | None = None
) -> list[Any]:
    """The results of a chord's members, in order (None for one that did not finish: only
    with allow_failure), from the callback's own hash ``job_key``. Runs in a worker thread."""
    if not isinstance(members, list) or not all(
        isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m) for m in members
    ):
        raise ValueError("chord_of must be a list of [queue, job id] pairs")
    for pause in (*_TRIES, None):
        try:
            return _read(redis_url, prefix, members, job_key)
        except Exception as exc:
            if pause is None or not is_outage(exc):
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")


def _read(redis_url: str, prefix: str, members: list[list[str]], job_key: str | None) -> list[Any]:
    client = connections.shared_client(redis_url)
    kept: list[Any] = [None, None] * len(members)
    if job_key is not None:
        fields = [f"{k}:{q}/{i}" for q, i in members for k in ("p", "r")]
        got: Any = client.hmget(job_key, fields)  # Any: typed 'T | Awaitable[T]' before 8.0
        kept = list(got)
    out: list[Any] = []
    unkept: list[int] = []
    for n, (status, result) in enumerate(zip(kept[::2], kept[1::2], strict=True)):
        if status is not None and (status != b"finished" or result is not None):
            out.append(serialization.loads(result) if status == b"finished" else None)
        else:
            out.append(None)
            unkept.append(n)
    if unkept:
        pipe = client.pipeline(transaction=False)
        for n in unkept:
            queue, job_id = members[n]
            pipe.hmget(QueueKeys.of(queue, prefix).job(job_id), ["status", "result"])
        for n, (status, result) in zip(unkept, pipe.execute(), strict=True):
            if status is None:
                queue, job_id = members[n]
                raise ChordResultLost(
                    f"the result of chord member {queue}/{job_id} is gone (its record expired "
                    "before the callback kept it)"
                )
            out[n] = serialization.loads(result) if status == b"finished" and result else None
    return out
