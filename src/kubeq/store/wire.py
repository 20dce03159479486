"""The argument and reply layouts of the worker's scripts (``fetch.lua``, ``heartbeat.lua``).

A Lua script takes flat argument lists and answers flat arrays, so both sides must agree on
positions. Each layout lives here, beside the script's own header comment, and is parsed in
one place into typed values; the worker never indexes a reply by hand. ``ack.lua``'s layout
lives with the outcomes it records (``outcomes.Settlement.ack_fields``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from kubeq.store.keys import QueueKeys

FETCH_HEADER = 2
"""fetch.lua's answer starts with ``remaining`` and ``wait_ms``."""
FETCH_FIELDS_PER_JOB = 7
"""then these 7 per job: queue index, id, lease token, payload, attempts, ready_at_ms,
deliveries."""


class FetchedJob(NamedTuple):
    """One job leased by a fetch (a NamedTuple: a worker makes one per job, and it is built
    in a third of a frozen dataclass's time)."""

    queue: QueueKeys
    id: str
    lease: str
    payload: bytes
    attempts: int
    """Attempts already made (acknowledged executions); this run is attempt ``attempts + 1``."""
    ready_at_ms: int
    deliveries: int


@dataclass(frozen=True)
class FetchReply:
    remaining: int
    """Jobs still ready in the fetched (unpaused) queues after this fetch, not counting a
    queue its rate limit holds back."""
    jobs: list[FetchedJob]
    wait_ms: int = -1
    """Milliseconds until a job held back for a time (delay, retry, rate limit) may run;
    -1 when none is: the worker sleeps no longer than this when idle."""


def fetch_args(
    worker_id: str,
    want: int,
    lease_ms: int,
    busy: int,
    worker_ttl_ms: int,
    queues: Sequence[QueueKeys],
    seq: int = 0,
    order: str = "",
    acked: Sequence[int] = (),
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one fetch.lua call over ``queues`` (in priority order). ``seq``
    numbers the worker's fetches (0: no transit log); ``order`` is the token of the acks
    sent before this fetch in the same pipeline, on the queues at indexes ``acked``."""
    keys = [k for q in queues for k in q.script_keys]
    args: list[Any] = [
        worker_id,
        want,
        lease_ms,
        busy,
        worker_ttl_ms,
        len(queues),
        *(q.base for q in queues),
        seq,
        order,
        *acked,
    ]
    return keys, args


def parse_fetch_reply(raw: Sequence[Any], queues: Sequence[QueueKeys]) -> FetchReply:
    """The typed form of fetch.lua's flat answer."""
    items = iter(raw[FETCH_HEADER:])
    jobs = [
        FetchedJob(  # positional: keywords cost a NamedTuple more than its fields
            queues[int(qi)],
            job_id.decode() if isinstance(job_id, bytes) else str(job_id),
            lease.decode() if isinstance(lease, bytes) else str(int(lease)),
            payload if isinstance(payload, bytes) else str(payload).encode(),
            int(attempts),
            int(ready_at),
            int(deliveries),
        )  # each job's items, taken in order from one iterator (no slice per job)
        for qi, job_id, lease, payload, attempts, ready_at, deliveries in zip(
            *(items,) * FETCH_FIELDS_PER_JOB, strict=False
        )
    ]
    return FetchReply(int(raw[0]), jobs, int(raw[1]))


def heartbeat_args(
    queue: QueueKeys,
    worker_id: str,
    busy: int,
    lease_ms: int,
    owned: Sequence[tuple[str, str]],
    answered: int = -1,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of heartbeat.lua for one queue; ``owned`` = (job id, lease) pairs;
    ``answered`` = the last fetch whose reply the worker has read or given up on (its later
    fetches' jobs are renewed from the transit log; -1: none is logged).
    The reply is parsed by ``parse_heartbeat_reply``."""
    args: list[Any] = [queue.base, worker_id, busy, lease_ms, answered]
    for job_id, lease in owned:
        args += [job_id, lease]
    return queue.script_keys, args


def parse_heartbeat_reply(raw: Sequence[Any]) -> list[tuple[str, bool]]:
    """heartbeat.lua's answer: (job id, aborted) for every job this worker no longer owns;
    aborted False means its lease was taken over by another worker. The script writes an
    aborted job's id as ``!<id>`` (``!`` is never in a job id)."""
    out: list[tuple[str, bool]] = []
    for item in raw:
        text = item.decode() if isinstance(item, bytes) else str(item)
        out.append((text[1:], True) if text.startswith("!") else (text, False))
    return out
