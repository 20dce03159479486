"""A batch task's run in the worker (docs/patterns.md): the batch job (the carrier formed by
batch.lua) names its items in ``<base>items:<carrier>``; the worker reads those still
``batched``, runs the task once with their list, and settles each item (batch_done.lua,
fenced by the batch's lease) before the batch's own ack.

The task's answer per item: return None (every item finished with None) or a list with one
entry per item, in order: an ``Exception`` instance fails that item (retried on its own as
the task's retry policy says, then dead-lettered with its error; the others finish), any
other value is that item's result. Raising
fails the whole batch: it is retried as the task's retry policy says, with the same items,
and after its last attempt every item is dead-lettered with the error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeq import serialization
from kubeq.outcomes import Outcome, Settlement
from kubeq.retry import RetryPolicy, decide
from kubeq.store import connections
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, run_pipeline


@dataclass(frozen=True)
class BatchRun:
    """The items a batch runs with: their ids and values, in the order they came."""

    ids: list[str]
    items: list[Any]
    waited_ms: int = 0
    """From the batch's first item to its start (both on the Redis server's clock)."""
    bad: list[Any] = field(default_factory=list)
    """batch_done.lua's fields for the items not run: malformed (dead-lettered with the
    reason) or past their expiry time (expired), settled before the task runs."""


def read_items(redis_url: str, keys: QueueKeys, carrier: str) -> BatchRun:
    """The batch's items not settled yet (a batch run again after a crash skips those its
    first run settled). An item's value is its call's one argument. Runs in a thread."""
    client = connections.shared_client(redis_url)
    ids = [i.decode() for i in client.lrange(keys.items(carrier), 0, -1)]  # type: ignore[union-attr]
    pipe = client.pipeline(transaction=False)
    pipe.hmget(keys.job(carrier), ["enqueued_at", "started_at"])
    for i in ids:
        pipe.hmget(keys.job(i), ["status", "payload", "expires_at"])
    (opened, started), *fields = pipe.execute()
    try:
        waited = max(0, int(started) - int(opened))
    except (TypeError, ValueError):
        waited = 0
    run = BatchRun([], [], waited)
    for i, (status, payload, expires_at) in zip(ids, fields, strict=True):
        if status == b"batched" and _expired(expires_at, started):
            run.bad.extend([i, "expired", "", ""])  # not run: it ends expired
        elif status == b"batched":
            try:
                _, args, _, _ = serialization.decode_call(payload or b"")
            except ValueError as exc:
                run.bad.extend([i, "failed", str(exc), str(exc)])
                continue
            run.ids.append(i)
            run.items.append(args[0] if args else None)
    return run


def _expired(expires_at: bytes | None, started: bytes | None) -> bool:
    """Whether an item's expiry time (ms) passed before its batch started (server clock)."""
    try:
        return expires_at is not None and int(expires_at) < int(started or b"")
    except ValueError:
        return False


def item_outcomes(run: BatchRun, result: Any, policy: RetryPolicy) -> tuple[list[Any], int]:
    """batch_done.lua's fields for a task's answer, and how many items failed; TypeError
    when the answer is neither None nor a list of one entry per item. A failed item is
    retried as the task's retry policy says (on its own, after its backoff: a batch of
    one), else dead-lettered."""
    if result is None:
        result = [None] * len(run.ids)
    if not isinstance(result, list | tuple) or len(result) != len(run.ids):
        raise TypeError(
            f"a batch task returns None or a list of one result per item ({len(run.ids)} "
            f"items), got {type(result).__name__}"
            + (f" of {len(result)}" if isinstance(result, list | tuple) else "")
        )
    fields: list[Any] = []
    failed = 0
    for job_id, value in zip(run.ids, result, strict=True):
        if isinstance(value, BaseException):
            ended = decide(policy, 1, value)
            error = f"{type(value).__name__}: {value}"
            if ended.outcome is Outcome.RETRY:
                fields += [job_id, "retry", error, f"+{ended.retry_delay_ms}"]
            else:
                fields += [job_id, "failed", error, f"failed in its batch: {ended.reason}"]
            failed += 1
        else:
            fields += [job_id, "finished", serialization.dumps(value), ""]
    return fields, failed


def settle_items(
    redis_url: str, keys: QueueKeys, carrier: str, lease: str, fields: list[Any]
) -> int:
    """Settle the items (batch_done.lua); -1 when the batch's lease was lost (the batch's own
    ack is refused too, and the batch runs again elsewhere). Runs in a thread."""
    if not fields:
        return 0
    # (the malformed items of the run are settled with the others: see BatchRun.bad)
    client = connections.shared_client(redis_url)
    call = (LUA["batch_done"], keys.script_keys, [keys.base, carrier, lease, *fields])
    (n,) = run_pipeline(client, [call])
    return int(n)


def all_failed(run: BatchRun, settlement: Settlement) -> list[Any]:
    """Every item dead-lettered with the batch's last error (its retries are spent)."""
    error = settlement.value.decode() if isinstance(settlement.value, bytes) else settlement.value
    reason = f"its batch failed: {settlement.reason or error}"
    return [x for job_id in run.ids for x in (job_id, "failed", error, reason)]


def summary(run: BatchRun, failed: int) -> Settlement:
    """The batch job's own result: how many items it ran, how many failed, and how long
    its first item waited for it to start."""
    body = {"items": len(run.ids), "failed": failed, "waited_ms": run.waited_ms}
    return Settlement.finished(serialization.dumps(body))


def lone_item(result: Any) -> Any:
    """The result of an item run on its own (a requeued dead letter, eager mode: a batch of
    one): its entry, raised when it is an exception."""
    if result is None:
        return None
    if not isinstance(result, list | tuple) or len(result) != 1:
        raise TypeError("a batch task returns None or a list of one result per item")
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]
