"""A filter on kopf's per-object log that drops one false warning and nothing else.

kopf checks every merge patch it sends against the object the API server returns and warns
"Merge-patching finished with inconsistencies" when a patched field differs. A patch that
removes the last annotation of an object (kopf's own ``touch-dummy``, removed together with
the finalizer while a TaskQueue or its namespace is deleted) leaves no annotations at all:
the API server drops the empty map, kopf compares ``{key: None}`` with ``None`` and warns,
and posts the warning as an Event, into a namespace that may be going away. The removal did
happen; this filter drops that warning when every inconsistency it lists is such a removal,
and keeps every other one.
"""

from __future__ import annotations

import ast
import logging
from typing import Any

PREFIX = "Merge-patching finished with inconsistencies: "
MAPS = {("metadata", "annotations"), ("metadata", "labels")}


def removal_done(item: Any) -> bool:
    """One inconsistency ``(op, field, old, new)`` that only says the removed keys are gone
    with their whole map: ``old`` holds only keys set to None, and ``new`` is None."""
    if not (isinstance(item, tuple) and len(item) == 4):
        return False
    _, field, old, new = item
    return (
        tuple(field) in MAPS
        and new is None
        and isinstance(old, dict)
        and bool(old)
        and all(v is None for v in old.values())
    )


def false_inconsistency(message: str) -> bool:
    """Whether a kopf log message is the inconsistency warning for removals only."""
    if not message.startswith(PREFIX):
        return False
    try:
        items = ast.literal_eval(message[len(PREFIX) :])
    except (ValueError, SyntaxError):
        return False
    return isinstance(items, tuple) and bool(items) and all(removal_done(i) for i in items)


class DropFalseInconsistencies(logging.Filter):
    """Drops kopf's inconsistency warning when every item in it is a completed removal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not false_inconsistency(record.getMessage())


def install() -> None:
    """Filter kopf's per-object logger (its Events are posted from the same records)."""
    logger = logging.getLogger("kopf.objects")
    if not any(isinstance(f, DropFalseInconsistencies) for f in logger.filters):
        logger.addFilter(DropFalseInconsistencies())
