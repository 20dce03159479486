"""The gateway's OpenAPI 3.1 document, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
    "required": ["error"],
}
_JOB_IN = {
    "type": "object",
    "required": ["task"],
    "additionalProperties": False,
    "properties": {
        "task": {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "description": "Registered task name (module.function); one of the TaskQueue's "
            "spec.tasks when it lists any.",
        },
        "args": {"type": "array"},
        "kwargs": {"type": "object"},
        "id": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,200}$"},
        "queue": {"type": "string", "description": "One of the TaskQueue's queues."},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9},
        "delay": {"type": "number", "minimum": 0},
        "timeout": {"type": "number", "exclusiveMinimum": 0},
        "max_attempts": {"type": "integer", "minimum": 1},
        "result_ttl": {"type": "integer", "minimum": 1, "maximum": 315_360_000},
        "fair_key": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "The job's fairness key: keys take turns (docs/fairness.md).",
        },
        "worker_pool": {
            "type": "string",
            "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
            "description": "The TaskQueue's worker pool that runs the job (spec.pools[].name); "
            "a pool it does not declare is a 400 (docs/scaling.md, Worker pools).",
        },
        "tags": {
            "type": "array",
            "maxItems": 16,
            "items": {"type": "string", "pattern": "^[A-Za-z0-9_.:=/-]{1,64}$"},
            "description": "Labels to find the job by (kubeq jobs --tag, Queue.find).",
        },
        "debounce": {"type": "number", "exclusiveMinimum": 0},
        "debounce_max": {"type": "number", "exclusiveMinimum": 0},
        "debounce_key": {"type": "string", "minLength": 1, "maxLength": 200},
        "singleton": {
            "type": "string",
            "enum": ["skip", "replace", "keep_latest", "cancel_running"],
            "description": "What a call of a held key does (docs/patterns.md).",
        },
        "singleton_key": {"type": "string", "minLength": 1, "maxLength": 200},
    },
}
_SIGNAL_IN = {
    "type": "object",
    "additionalProperties": False,
    "description": "Exactly one of key and job.",
    "properties": {
        "key": {
            "type": "string",
            "minLength": 1,
            "maxLength": 512,
            "description": "The signal key jobs wait on (kubeq.wait_for).",
        },
        "job": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_.:-]{1,200}$",
            "description": "A sleeping job: the signal goes to the key it waits for (mode all).",
        },
        "payload": {"description": "Any JSON, at most 256 KiB; wait_for returns it."},
        "queue": {"type": "string", "description": "One of the TaskQueue's queues."},
        "mode": {"enum": ["all", "one"], "description": "Wake every waiter, or the oldest."},
        "ttl": {
            "type": "number",
            "minimum": 0,
            "maximum": 31_622_400,
            "description": "Seconds the payload is kept for jobs that wait later.",
        },
    },
}
_PARAMS = [
    {"name": "ns", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
]
_JOB_PARAMS = [
    *_PARAMS,
    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
    {
        "name": "queue",
        "in": "query",
        "schema": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_.:-]{1,128}(@[a-z0-9-]{1,63})?(#[0-9]+)?$",
        },
    },
]


def _refusals(*codes: int) -> dict[str, Any]:
    why = {
        400: "Bad input; `field` names it.",
        401: "No token, or one not valid for the gateway's audience (or expired).",
        403: "RBAC does not allow this verb on taskqueues/jobs of this TaskQueue.",
        404: "No such TaskQueue or job.",
        413: "Body too large.",
        429: "Too many requests from this caller, or too many refused tokens from its address "
        "or in all; see Retry-After.",
        503: "The Kubernetes API server or the TaskQueue's Redis did not answer; see Retry-After.",
    }
    retry = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
    return {
        str(c): {
            "description": why[c],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            **({"headers": retry} if c in (429, 503) else {}),
        }
        for c in (*codes, 503)
    }


_JSON_OK = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
JOBS = "/v1/namespaces/{ns}/taskqueues/{name}/jobs"
SIGNALS = "/v1/namespaces/{ns}/taskqueues/{name}/signals"

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "kubeq gateway",
        "version": "1",
        "description": "Enqueue and follow jobs of a kubeq TaskQueue, and signal the jobs "
        "that wait (docs/protocol.md).",
    },
    "components": {
        "schemas": {"Error": _ERROR, "Job": _JOB_IN, "Signal": _SIGNAL_IN},
        "securitySchemes": {"serviceAccountToken": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"serviceAccountToken": []}],
    "paths": {
        JOBS: {
            "post": {
                "summary": "Enqueue one job, or {jobs: [...]} (RBAC verb create)",
                "parameters": _PARAMS,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/Job"},
                                    {
                                        "type": "object",
                                        "properties": {
                                            "jobs": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Job"},
                                                "maxItems": 1000,
                                            }
                                        },
                                        "required": ["jobs"],
                                    },
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "201": {**_JSON_OK, "description": "Enqueued: {jobs: [{id, queue}]}"},
                    **_refusals(400, 401, 403, 404, 413, 429),
                },
            }
        },
        JOBS + "/{id}": {
            "get": {
                "summary": "Status, result and error of a job (RBAC verb get)",
                "parameters": _JOB_PARAMS,
                "responses": {"200": _JSON_OK, **_refusals(400, 401, 403, 404, 429)},
            },
            "delete": {
                "summary": "Cancel a job not started; ?abort=true also stops a running one "
                "(RBAC verb delete)",
                "parameters": [
                    *_JOB_PARAMS,
                    {"name": "abort", "in": "query", "schema": {"type": "boolean"}},
                ],
                "responses": {"200": _JSON_OK, **_refusals(400, 401, 403, 404, 429)},
            },
        },
        JOBS + "/{id}/result": {
            "get": {
                "summary": "Wait up to ?wait= seconds (at most 60) for the job to end "
                "(blocks on Redis; RBAC verb get)",
                "parameters": [
                    *_JOB_PARAMS,
                    {
                        "name": "wait",
                        "in": "query",
                        "schema": {"type": "number", "minimum": 0, "maximum": 60},
                    },
                ],
                "responses": {"200": _JSON_OK, **_refusals(400, 401, 403, 404, 429)},
            }
        },
        SIGNALS: {
            "post": {
                "summary": "Signal the jobs waiting on a key, or the key a job waits for; "
                "replies {key, queue, woke} (RBAC verb update)",
                "parameters": _PARAMS,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Signal"}}
                    },
                },
                "responses": {
                    "200": _JSON_OK,
                    "409": {
                        "description": "The job does not wait for a signal.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                    **_refusals(400, 401, 403, 404, 413, 429),
                },
            }
        },
    },
}
