"""Worker documents as the dashboard shows them: every field of the expected type.

A worker document is JSON any process with access to Redis can write. One with a field of
the wrong type (``"jobs": "x"``, a count that is not a number, a job without a queue) must
not break the pages that show workers, throughput or anything else: ``tidy`` gives each
field its expected type, drops what cannot be shown (a job entry whose queue or id could
not be a link), and lists what was wrong in ``problems`` so the Workers page flags the row.
"""

from __future__ import annotations

import math
from typing import Any

from kubeq.store.keys import validate_job_id, validate_queue_name

TEXT_FIELDS = ("id", "pod", "host", "pool")
INT_FIELDS = ("pid", "concurrency", "busy", "prefetched", "rss_bytes")
FLOAT_FIELDS = ("started_at", "at", "cpu_seconds")


def _number(value: Any, kind: type[int] | type[float]) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return kind(value)


def _job(entry: Any) -> dict[str, str] | None:
    if not isinstance(entry, dict):
        return None
    try:
        queue = validate_queue_name(str(entry.get("queue", "")))
        job_id = validate_job_id(str(entry.get("id", "")))
    except ValueError:
        return None
    return {"queue": queue, "id": job_id, "task": str(entry.get("task", "?"))}


def _counts(raw: Any) -> dict[str, dict[str, int]] | None:
    if not isinstance(raw, dict):
        return None
    out: dict[str, dict[str, int]] = {}
    for queue, by_outcome in raw.items():
        if not isinstance(by_outcome, dict):
            return None
        row: dict[str, int] = {}
        for outcome, n in by_outcome.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                return None
            row[str(outcome)] = n
        out[str(queue)] = row
    return out


def tidy(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with every field the pages use, of its type; ``problems`` names the fields
    that were missing or wrong (empty for a document a kubeq worker wrote)."""
    problems: list[str] = []
    out: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value = doc.get(name)
        if not isinstance(value, str):
            problems.append(name)
        out[name] = "" if value is None else str(value)
    for name, kind in [*((n, int) for n in INT_FIELDS), *((n, float) for n in FLOAT_FIELDS)]:
        value = _number(doc.get(name), kind)
        if value is None and name in doc:
            problems.append(name)
        out[name] = value
    queues = doc.get("queues")
    if not isinstance(queues, list):
        problems.append("queues")
        queues = []
    out["queues"] = [str(q) for q in queues]
    jobs = doc.get("jobs", [])
    if not isinstance(jobs, list):
        problems.append("jobs")
        jobs = []
    out["jobs"] = [j for j in map(_job, jobs) if j is not None]
    if len(out["jobs"]) != len(jobs):
        problems.append("jobs")
    counts = _counts(doc.get("counts", {}))
    if counts is None:
        problems.append("counts")
    out["counts"] = counts or {}
    out["problems"] = sorted(set(problems))
    return out
