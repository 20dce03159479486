"""How the dashboard writes times and sizes for people (also Jinja2 filters)."""

from __future__ import annotations

import datetime
import time


def ago(ts: float | None, now: float | None = None) -> str:
    """'12 s', '3 min', '2 h' since ``ts`` (Unix seconds); '' when unknown."""
    if not ts:
        return ""
    seconds = max(0.0, (now or time.time()) - ts)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def when(ts: float | None) -> str:
    """A UTC timestamp, to the second."""
    if not ts:
        return ""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def mib(n: int | None) -> str:
    return "" if n is None else f"{n / 1048576:.1f} MiB"
