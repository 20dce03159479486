"""Reading the job search index that enqueue.lua writes (``QueueKeys.ix_task``, ``ix_tag``):
per task and per tag, a LIST of ``<enqueue ms>:<id>`` entries, oldest first.

``newest`` walks one index from its new end, a page at a time, down to a time; ``prune``
drops the entries at its old end whose job record is gone (their result TTL passed, a
purge), so an index shrinks with its jobs; enqueue.lua also ages entries out after 7 days and
caps each index at 2,000,000. An entry in the middle whose record is gone (a job with a
shorter result TTL than older ones, a purged one) is skipped by readers and leaves with age.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from kubeq.store.keys import QueueKeys

PAGE = 500
KEEP_MS = 7 * 86_400_000
"""enqueue.lua's IX_KEEP_MS: how long an entry, and an index nobody writes, is kept."""
CAP = 2_000_000
"""enqueue.lua's IX_CAP: the most entries one index keeps (the oldest go)."""


def parse(entry: bytes) -> tuple[int, str]:
    """(enqueue ms, job id) of one entry; (0, raw text) when malformed (written by hand)."""
    text = entry.decode(errors="replace")
    ms, _, job_id = text.partition(":")
    return (int(ms), job_id) if ms.isdigit() and job_id else (0, text)


def newest(client: Any, key: str, floor_ms: int | None) -> Iterator[tuple[int, str]]:
    """(enqueue ms, id) of one index, newest first, down to ``floor_ms`` (None: all). Entries
    pushed meanwhile shift the pages, so an entry may come twice (readers skip repeats)."""
    start = 0
    while True:
        page = cast("list[bytes]", client.lrange(key, -(start + PAGE), -(start + 1)))
        if not page:
            return
        start += len(page)
        for entry in reversed(page):
            ms, job_id = parse(entry)
            if floor_ms is not None and ms < floor_ms:
                return
            yield ms, job_id
        if len(page) < PAGE:
            return


def prune(client: Any, keys: QueueKeys, key: str, most: int = PAGE) -> int:
    """Drop the entries at ``key``'s old end whose job record is gone (up to ``most``);
    how many went."""
    old = [parse(e)[1] for e in cast("list[bytes]", client.lrange(key, 0, most - 1))]
    if not old:
        return 0
    pipe = client.pipeline(transaction=False)
    for job_id in old:
        pipe.exists(keys.job(job_id))
    gone = 0
    for there in pipe.execute():
        if there:
            break
        gone += 1
    if gone:
        client.ltrim(key, gone, -1)
    return gone
