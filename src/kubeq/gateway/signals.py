"""The body of the gateway's signal route (``POST .../signals``, docs/protocol.md): the signal
key a job waits on (``key``) or the job whose wait it answers (``job``), the ``payload``, and
for a key the ``queue``, ``mode`` and ``ttl`` of ``App.signal`` (docs/durable.md). Each field
has its own check, so a refusal (400) names the field that failed it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeq import defaults, serialization
from kubeq.checks import check_seconds
from kubeq.client.durable import MAX_KEY, MAX_SECONDS
from kubeq.gateway.kube import Refused
from kubeq.store.keys import validate_job_id, validate_queue_name


@dataclass(frozen=True)
class SignalRequest:
    key: str | None = None
    """The signal key; None when ``job`` names the waiter instead."""
    job: str | None = None
    """A sleeping job's id: the signal goes to the key it waits for."""
    payload: Any = None
    queue: str | None = None
    mode: str = "all"
    ttl: float | None = None


def _key(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KEY:
        raise ValueError(
            f"key must be the signal key the jobs wait on (1-{MAX_KEY} characters, e.g. "
            f"'shipment:42'), got {value!r}"
        )
    return value


def _job(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"job must be a job id (a string), got {type(value).__name__}")
    return validate_job_id(value)


def _payload(value: Any) -> Any:
    size = len(serialization.dumps(value))
    if size > defaults.MAX_STEP_BYTES:
        raise ValueError(
            f"payload is {size} bytes as JSON, over the limit of {defaults.MAX_STEP_BYTES}: "
            "send a reference (an object key, a row id) instead"
        )
    return value


def _queue(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"queue must be a string, got {type(value).__name__}")
    name, _, partition = value.partition("#")
    validate_queue_name(name)
    if _ and not partition.isdigit():
        raise ValueError(f"queue {value!r}: a partition is '#' and a number")
    return value


def _mode(value: Any) -> str:
    if value not in ("all", "one"):
        raise ValueError(f"mode must be 'all' (every waiter) or 'one' (the oldest), got {value!r}")
    return str(value)


def _ttl(value: Any) -> float:
    seconds = check_seconds("ttl", value, allow_zero=True)
    if seconds > MAX_SECONDS:
        raise ValueError(f"ttl must be at most 366 days ({MAX_SECONDS} s), got {value!r}")
    return seconds


FIELDS: dict[str, Callable[[Any], Any]] = {
    "key": _key,
    "job": _job,
    "payload": _payload,
    "queue": _queue,
    "mode": _mode,
    "ttl": _ttl,
}


def parse_signal(raw: bytes, queues: tuple[str, ...]) -> SignalRequest:
    """The signal of a POST body; Refused(400) naming the first bad field."""
    try:
        body = serialization.loads(raw)
    except ValueError as exc:
        raise Refused(400, f"the body is not valid JSON: {exc}", "body") from None
    if not isinstance(body, dict):
        raise Refused(400, "the body must be a JSON object: {'key' or 'job', 'payload'}", "body")
    values: dict[str, Any] = {}
    for field, value in body.items():
        check = FIELDS.get(field)
        if check is None:
            raise Refused(400, f"unknown field {field!r}; known: {', '.join(FIELDS)}", field)
        try:
            values[field] = check(value)
        except ValueError as exc:
            raise Refused(400, str(exc), field) from None
    if ("key" in values) == ("job" in values):
        field = "job" if "key" in values else "key"
        raise Refused(400, "send exactly one of key (a signal key) and job (a job id)", field)
    if "job" in values:
        for field in ("mode", "ttl"):
            if field in values:
                raise Refused(400, f"{field} is for a signal by key, not by job", field)
    queue = values.get("queue", queues[0])
    if queue.split("#", 1)[0] not in queues:
        reason = f"queue {queue!r} is not a queue of this TaskQueue ({', '.join(queues)})"
        raise Refused(400, reason, "queue")
    if "key" in values and "#" in queue:
        reason = "a signal by key goes to a whole queue (every partition): name it without '#'"
        raise Refused(400, reason, "queue")
    return SignalRequest(**{**values, "queue": queue})
