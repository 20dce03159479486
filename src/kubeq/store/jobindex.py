"""Reading the job search index that enqueue.lua writes (``QueueKeys.ix_task``, ``ix_tag``):
per task and per tag, a LIST of entries, oldest first. An entry is ``<enqueue ms>:<id>``, or
the bare id when the id says when it was made (``ids.created_ms``) and the enqueue came
within ``SKEW_MS`` of that (most jobs: 21 bytes of Redis memory instead of 35).

``newest`` walks one index from its new end, a page at a time, down to a time; ``prune``
drops the entries at its old end whose job record is gone (their result TTL passed, a
purge), so an index shrinks with its jobs; enqueue.lua also ages entries out after 7 days and
caps each index at 2,000,000. An entry in the middle whose record is gone (a job with a
shorter result TTL than older ones, a purged one) is skipped by readers and leaves with age.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from kubeq.store.ids import created_ms
from kubeq.store.keys import QueueKeys

PAGE = 500
KEEP_MS = 7 * 86_400_000
"""enqueue.lua's IX_KEEP_MS: how long an entry, and an index nobody writes, is kept."""
CAP = 2_000_000
"""enqueue.lua's IX_CAP: the most entries one index keeps (the oldest go)."""
SKEW_MS = 60_000
"""enqueue.lua's IX_SKEW_MS: a bare entry's job was enqueued within this of its id's time."""


def parse(entry: bytes) -> tuple[int, str]:
    """(enqueue ms, job id) of one entry: for a bare id, when the id was made (the enqueue
    came within ``SKEW_MS`` of it); (0, raw text) when malformed (written by hand)."""
    text = entry.decode(errors="replace")
    ms, colon, job_id = text.partition(":")
    if colon:
        return (int(ms), job_id) if ms.isdigit() and job_id else (0, text)
    return created_ms(text) or 0, text


def newest(client: Any, key: str, floor_ms: int | None) -> Iterator[tuple[int, str]]:
    """(enqueue ms, id) of one index, newest first, down to ``floor_ms`` less ``SKEW_MS`` (None:
    all; the caller checks each job's own ``enqueued_at``). Entries pushed meanwhile shift the
    pages, so an entry may come twice (readers skip repeats)."""
    start = 0
    while True:
        page = cast("list[bytes]", client.lrange(key, -(start + PAGE), -(start + 1)))
        if not page:
            return
        start += len(page)
        for entry in reversed(page):
            ms, job_id = parse(entry)
            if floor_ms is not None and ms < floor_ms - SKEW_MS:  # a bare id's time is near
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
