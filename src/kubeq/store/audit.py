"""The audit trail: who paused, resumed or purged a queue, cancelled, aborted or requeued
jobs (one, a filter's, dead letters), or paused, resumed, triggered, changed or deleted a
schedule; when, and how many jobs it concerned.

One capped Redis stream per prefix (``keys.audit_key``): each entry holds ``who`` (from the
CLI the ``KUBEQ_ACTOR`` environment variable, else ``user@host``; from the dashboard the
user its auth proxy names, else ``dashboard-token@<client address>``; from the gateway the
caller's Kubernetes user ``via`` the gateway), ``action`` (``queue.pause``, ``job.cancel``,
``dlq.requeue``, ``jobs.cancel``, ``schedule.pause``...), ``target`` (a queue, a job id, a
schedule id, or the filter a bulk action used), ``count`` (jobs or schedules it changed),
``queue`` when it concerned one, and ``via`` (``cli``, ``dashboard``, ``gateway``,
``library``); the entry id is the time. The stream keeps the last ``MAX_ENTRIES`` entries.
``kubeq audit`` lists it, newest first; the dashboard's Audit page too.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from kubeq.store.keys import audit_key

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Entry:
    at_ms: int
    who: str
    action: str
    target: str
    count: int
    queue: str = ""
    via: str = ""


_ACTING: ContextVar[tuple[str, str] | None] = ContextVar("kubeq_acting", default=None)


@contextlib.contextmanager
def acting_as(who: str, via: str) -> Iterator[None]:
    """Within this block (and the threads it starts through the context), library calls that
    record an entry (``app.schedules.pause``...) name ``who`` and ``via``: how the dashboard
    credits its user rather than its own process."""
    token = _ACTING.set((who, via))
    try:
        yield
    finally:
        _ACTING.reset(token)


def actor() -> str:
    """Who acts: the ``acting_as`` block's, else ``KUBEQ_ACTOR`` when set (a CI job names its
    caller), else the local user and host."""
    acting = _ACTING.get()
    if acting is not None:
        return acting[0]
    named = os.environ.get("KUBEQ_ACTOR", "").strip()
    if named:
        return named
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def fields(
    action: str,
    target: str,
    count: int,
    who: str | None = None,
    queue: str = "",
    via: str = "",
) -> dict[str, Any]:
    out = {"who": who or actor(), "action": action, "target": target, "count": count}
    if queue:
        out["queue"] = queue
    acting = _ACTING.get()
    via = via or (acting[1] if acting is not None else "")
    if via:
        out["via"] = via
    return out


def record(
    client: Any,
    prefix: str,
    action: str,
    target: str,
    count: int = 1,
    who: str | None = None,
    *,
    queue: str = "",
    via: str = "",
) -> None:
    """Append one entry (sync client)."""
    entry = fields(action, target, count, who, queue, via)
    client.xadd(audit_key(prefix), entry, maxlen=MAX_ENTRIES, approximate=False)


async def arecord(
    client: Any,
    prefix: str,
    action: str,
    target: str,
    count: int = 1,
    who: str | None = None,
    *,
    queue: str = "",
    via: str = "",
) -> None:
    """Append one entry (asyncio client)."""
    entry = fields(action, target, count, who, queue, via)
    await client.xadd(audit_key(prefix), entry, maxlen=MAX_ENTRIES, approximate=False)


def _text(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def read(client: Any, prefix: str, limit: int = 100) -> list[Entry]:
    """The last ``limit`` entries, newest first."""
    raw = cast("list[Any]", client.xrevrange(audit_key(prefix), count=limit))
    out = []
    for entry_id, f in raw:
        d = {_text(k): _text(v) for k, v in f.items()}
        out.append(
            Entry(
                at_ms=int(_text(entry_id).split("-")[0]),
                who=d.get("who", ""),
                action=d.get("action", ""),
                target=d.get("target", ""),
                count=int(d.get("count") or 0),
                queue=d.get("queue", ""),
                via=d.get("via", ""),
            )
        )
    return out
