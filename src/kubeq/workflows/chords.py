"""What a chord's callback receives: its members' results, read in one round trip by the
worker that runs the callback (``chord_of`` in the callback's payload names the members)."""

from __future__ import annotations

from typing import Any

from kubeq import serialization
from kubeq.store import connections
from kubeq.store.keys import QueueKeys


def chord_results(redis_url: str, prefix: str, members: Any) -> list[Any]:
    """The results of a chord's members, in order (None for one that did not finish: only
    with allow_failure). Runs in a worker thread."""
    if not isinstance(members, list) or not all(
        isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m) for m in members
    ):
        raise ValueError("chord_of must be a list of [queue, job id] pairs")
    pipe = connections.shared_client(redis_url).pipeline(transaction=False)
    for queue, job_id in members:
        pipe.hmget(QueueKeys.of(queue, prefix).job(job_id), ["status", "result"])
    out = []
    for status, result in pipe.execute():
        out.append(serialization.loads(result) if status == b"finished" and result else None)
    return out
