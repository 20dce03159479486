"""Job tags: short labels a caller attaches to a job to find it later (``kubeq jobs --tag``).

A tag is 1-64 characters of letters, digits and ``_ . : = / -`` (it becomes part of an
index key name, ``kubeq:{queue}:ix:tag:<tag>``); a job carries at most ``MAX_TAGS``. Given
per call (``apply_async(tags=[...])``, ``Call.set(tags=...)``) or as a task's default
(``@app.task(tags=[...])``); a call's tags replace the task's.
"""

from __future__ import annotations

import re

MAX_TAGS = 16
"""Tags one job may carry."""
_TAG = re.compile(r"[A-Za-z0-9_.:=/-]{1,64}")


def check_tags(value: object, where: str = "tags") -> tuple[str, ...]:
    """``value`` as a tuple of tags (duplicates dropped, order kept), or ValueError naming
    ``where`` and the fix."""
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(
            f"{where} must be a list of short strings, e.g. {where}=['customer:42', 'vip'], "
            f"got {value!r}"
        )
    out: list[str] = []
    for tag in value:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise ValueError(
                f"{where}: {tag!r} is not a tag: use 1-64 characters of letters, digits, "
                "'_', '.', ':', '=', '/' or '-'"
            )
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise ValueError(f"{where}: at most {MAX_TAGS} tags per job, got {len(out)}")
    return tuple(out)
