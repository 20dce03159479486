"""The conformance suite's adapter for kubeq's Python client (``kubeq.App``).

A client under test is a command that takes a Redis URL, a key prefix and one JSON request
as arguments and prints one JSON reply (tests/protocol/README.md). This one does each request
with the public Python API, as an application would.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import kubeq
from kubeq.errors import JobAborted, JobCancelled, JobExpired, JobFailed, JobNotFound, ResultTimeout
from kubeq.options import Call

OPTIONS = ("priority", "delay", "timeout", "max_attempts", "result_ttl")
FLOW = ("debounce", "debounce_max", "debounce_key", "singleton", "singleton_key")


def _batch(spec: dict[str, Any] | None) -> kubeq.Batch | None:
    """A request's ``batch`` ({"max_size", "max_wait", "key"?}) as the task's kubeq.Batch."""
    if spec is None:
        return None
    return kubeq.Batch(spec["max_size"], spec["max_wait"], spec.get("key"))


def handle(app: kubeq.App, request: dict[str, Any]) -> dict[str, Any]:
    op, queue = request["op"], request["queue"]
    if op == "enqueue":
        calls = [
            Call(
                task=job["task"],
                args=tuple(job.get("args", [])),
                kwargs=job.get("kwargs", {}),
                job_id=job.get("id"),
                batch=_batch(job.get("batch")),
                **{k: job[k] for k in OPTIONS + FLOW if k in job},
            )
            for job in request["jobs"]
        ]
        return {"ids": [j.id for j in app.enqueue_many(calls, queue=queue)]}
    job = app.job(request["id"], queue=queue)
    if op == "status":
        return {"status": job.status()}
    if op == "result":
        try:
            return {"status": "finished", "result": job.result(timeout=request["wait"])}
        except ResultTimeout:
            return {"status": job.status()}
        except JobFailed as exc:
            return {"status": "failed", "error": exc.error}
        except (JobCancelled, JobAborted, JobExpired, JobNotFound):
            return {"status": job.status()}
    if op == "cancel":
        done = job.abort() if request.get("abort") else job.cancel()
        return {"stopped": done}
    raise SystemExit(f"unknown op {op!r}")


def main() -> None:
    url, prefix, raw = sys.argv[1:4]
    app = kubeq.App(url, prefix=prefix)
    try:
        print(json.dumps(handle(app, json.loads(raw))))
    finally:
        app.close()


if __name__ == "__main__":
    main()
