"""The audit trail: who paused, resumed, triggered, changed or deleted a schedule, and who
cancelled or requeued jobs, when, and how many jobs it concerned.

One capped Redis stream per prefix (``keys.audit_key``): each entry holds ``who`` (the
``KUBEQ_ACTOR`` environment variable, else ``user@host``), ``action`` (``schedule.pause``,
``jobs.cancel``...), ``target`` (a schedule id, or the filter a bulk action used) and
``count`` (jobs or schedules it changed); the entry id is the time. The stream keeps the
last ``MAX_ENTRIES`` entries. ``kubeq audit`` lists it, newest first.
"""

from __future__ import annotations

import getpass
import os
import socket
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


def actor() -> str:
    """Who acts: ``KUBEQ_ACTOR`` when set (a gateway or a CI job names its caller), else the
    local user and host."""
    named = os.environ.get("KUBEQ_ACTOR", "").strip()
    if named:
        return named
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def fields(action: str, target: str, count: int, who: str | None = None) -> dict[str, Any]:
    return {"who": who or actor(), "action": action, "target": target, "count": count}


def record(
    client: Any, prefix: str, action: str, target: str, count: int = 1, who: str | None = None
) -> None:
    """Append one entry (sync client)."""
    client.xadd(
        audit_key(prefix), fields(action, target, count, who), maxlen=MAX_ENTRIES, approximate=False
    )


async def arecord(
    client: Any, prefix: str, action: str, target: str, count: int = 1, who: str | None = None
) -> None:
    """Append one entry (asyncio client)."""
    await client.xadd(
        audit_key(prefix), fields(action, target, count, who), maxlen=MAX_ENTRIES, approximate=False
    )


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
            )
        )
    return out
