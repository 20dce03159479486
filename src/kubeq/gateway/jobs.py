"""A POST body of the gateway into ``Call`` objects: one job object, or ``{"jobs": [...]}`` of
up to ``MAX_JOBS``. Each field of a job (docs/protocol.md, The HTTP gateway) has its own
check in ``FIELDS``, so a refusal (400) names the field that failed it, never one guessed
from an error's text: ``jobs[3].priority``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeq import serialization
from kubeq.checks import (
    MAX_TTL,
    check_count,
    check_fair_key,
    check_priority,
    check_seconds,
    check_timeout,
    check_worker_pool,
)
from kubeq.gateway.kube import Refused
from kubeq.options import Call
from kubeq.patterns import SINGLETON_MODES, check_key, check_options
from kubeq.store.keys import validate_job_id, validate_queue_name
from kubeq.tags import check_tags

MAX_JOBS = 1000
"""Jobs one request may enqueue."""
MAX_TASK_NAME = 256
"""Characters of a task name at most."""


def _task(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TASK_NAME:
        raise ValueError(
            f"task must be the registered name of the task (1-{MAX_TASK_NAME} characters), "
            f"got {value!r}"
        )
    return value


def _args(value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise ValueError(f"args must be a JSON array, got {type(value).__name__}")
    try:
        serialization.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"args cannot be sent: {exc}") from None
    return tuple(value)


def _kwargs(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"kwargs must be a JSON object, got {type(value).__name__}")
    try:
        serialization.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"kwargs cannot be sent: {exc}") from None
    return value


def _id(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"id must be a string, got {type(value).__name__}")
    return validate_job_id(value)


def _queue(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"queue must be a string, got {type(value).__name__}")
    return validate_queue_name(value)


def _singleton(value: Any) -> str:
    if value not in SINGLETON_MODES:
        raise ValueError(f"singleton must be one of {', '.join(SINGLETON_MODES)}, got {value!r}")
    return str(value)


FLOW = ("debounce", "debounce_max", "debounce_key", "singleton", "singleton_key")
"""The debounce and singleton fields (docs/patterns.md), checked together too."""

FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "task": ("task", _task),
    "args": ("args", _args),
    "kwargs": ("kwargs", _kwargs),
    "id": ("job_id", _id),
    "queue": ("queue", _queue),
    "priority": ("priority", check_priority),
    "delay": ("delay", lambda v: check_seconds("delay", v, allow_zero=True)),
    "timeout": ("timeout", check_timeout),
    "max_attempts": ("max_attempts", lambda v: check_count("max_attempts", v)),
    "result_ttl": ("result_ttl", lambda v: check_count("result_ttl", v, high=MAX_TTL)),
    "fair_key": ("fair_key", check_fair_key),
    "worker_pool": ("worker_pool", check_worker_pool),
    "tags": ("tags", check_tags),
    "debounce": ("debounce", lambda v: check_seconds("debounce", v)),
    "debounce_max": ("debounce_max", lambda v: check_seconds("debounce_max", v)),
    "debounce_key": ("debounce_key", lambda v: check_key("debounce_key", v)),
    "singleton": ("singleton", _singleton),
    "singleton_key": ("singleton_key", lambda v: check_key("singleton_key", v)),
}
"""Body field -> (the ``Call`` field it sets, its check: the value to use or ValueError)."""


def parse_body(raw: bytes, queues: tuple[str, ...], tasks: tuple[str, ...] = ()) -> list[Call]:
    """The calls of a POST body; Refused(400) naming the first bad field. ``tasks``, when
    not empty, are the only task names accepted (the TaskQueue's ``spec.tasks``)."""
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
    options: dict[str, Any] = {}
    for field, value in doc.items():
        known = FIELDS.get(field)
        if known is None:
            raise Refused(400, f"unknown field {field!r}; known: {', '.join(FIELDS)}", name(field))
        target, check = known
        try:
            options[target] = check(value)
        except ValueError as exc:
            raise Refused(400, str(exc), name(field)) from None
    if "task" not in options:
        raise Refused(400, "task is required: the registered name of the task", name("task"))
    if tasks and options["task"] not in tasks:
        raise Refused(
            400,
            f"task {options['task']!r} is not declared in this TaskQueue's spec.tasks "
            f"({', '.join(tasks)})",
            name("task"),
        )
    for field in FLOW:  # each pattern field with the others it needs, in this order
        if field in options:
            try:
                seen = FLOW[: FLOW.index(field) + 1]
                check_options(*(options.get(f) if f in seen else None for f in FLOW))
            except ValueError as exc:
                raise Refused(400, str(exc), name(field)) from None
    options.setdefault("queue", queues[0])
    if options["queue"] not in queues:
        raise Refused(
            400,
            f"queue {options['queue']!r} is not a queue of this TaskQueue ({', '.join(queues)})",
            name("queue"),
        )
    return Call(**options)
