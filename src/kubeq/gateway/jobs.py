"""A POST body of the gateway into ``Call`` objects, refusing bad input with the field it
names: one job object, or ``{"jobs": [...]}`` of up to ``MAX_JOBS``. The fields are those of
docs/protocol.md (The HTTP gateway)."""

from __future__ import annotations

from typing import Any

from kubeq import serialization
from kubeq.client.enqueue import check_call
from kubeq.gateway.kube import Refused
from kubeq.options import Call

MAX_JOBS = 1000
"""Jobs one request may enqueue."""

_TYPES: dict[str, tuple[type, ...]] = {
    "task": (str,),
    "args": (list,),
    "kwargs": (dict,),
    "id": (str,),
    "queue": (str,),
    "priority": (int,),
    "delay": (int, float),
    "timeout": (int, float),
    "max_attempts": (int,),
    "result_ttl": (int,),
    "fair_key": (str,),
}
_CALL_NAMES = {"id": "job_id"}


def parse_body(raw: bytes, queues: tuple[str, ...], tasks: tuple[str, ...] = ()) -> list[Call]:
    """The calls of a POST body; Refused(400) naming the first bad field. ``tasks``, when
    not empty, are the only task names accepted."""
    try:
        body = serialization.loads(raw)
    except ValueError as exc:
        raise Refused(400, f"the body is not valid JSON: {exc}", "body") from None
    if not isinstance(body, dict):
        raise Refused(400, "the body must be a JSON object: one job, or {'jobs': [...]}", "body")
    if "jobs" in body:
        if set(body) != {"jobs"}:
            extra = sorted(set(body) - {"jobs"})[0]
            raise Refused(400, f"unknown field {extra!r} beside 'jobs'", extra)
        docs = body["jobs"]
        if not isinstance(docs, list) or not 0 < len(docs) <= MAX_JOBS:
            raise Refused(400, f"'jobs' must be a list of 1 to {MAX_JOBS} jobs", "jobs")
        return [_call(doc, f"jobs[{i}]", queues, tasks) for i, doc in enumerate(docs)]
    return [_call(body, "", queues, tasks)]


def _call(doc: Any, where: str, queues: tuple[str, ...], tasks: tuple[str, ...]) -> Call:
    def name(field: str) -> str:
        return f"{where}.{field}" if where else field

    if not isinstance(doc, dict):
        raise Refused(400, "a job must be a JSON object", where or "body")
    for field, value in doc.items():
        kinds = _TYPES.get(field)
        if kinds is None:
            raise Refused(400, f"unknown field {field!r}; known: {', '.join(_TYPES)}", name(field))
        if not isinstance(value, kinds) or isinstance(value, bool):
            wanted = " or ".join(k.__name__ for k in kinds)
            raise Refused(400, f"{field} must be of type {wanted}", name(field))
    if not doc.get("task"):
        raise Refused(400, "task is required: the registered name of the task", name("task"))
    if tasks and doc["task"] not in tasks:
        raise Refused(
            400,
            f"task {doc['task']!r} is not declared by this TaskQueue ({', '.join(tasks)})",
            name("task"),
        )
    queue = doc.get("queue", queues[0])
    if queue not in queues:
        raise Refused(
            400,
            f"queue {queue!r} is not a queue of this TaskQueue ({', '.join(queues)})",
            name("queue"),
        )
    options: dict[str, Any] = {_CALL_NAMES.get(k) or k: v for k, v in doc.items() if k != "args"}
    options["queue"] = queue
    call = Call(args=tuple(doc.get("args", ())), **options)
    try:
        check_call(call)
        call.due()
        serialization.encode_call(call.task, call.args, call.kwargs)
    except (ValueError, TypeError) as exc:
        field = next((f for f in _TYPES if f in str(exc)), "body")
        raise Refused(400, str(exc), name(field)) from None
    return call
