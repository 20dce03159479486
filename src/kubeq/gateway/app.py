"""The gateway's ASGI app (Starlette): routes, the order of checks (size, token, rate, RBAC,
TaskQueue, body) and the replies. Every refusal is JSON ``{"error", "field"?}`` with its
status; ``/openapi.json`` describes the API (``openapi.py``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kubeq.client.app import App
from kubeq.errors import JobAborted, JobCancelled, JobExpired, JobFailed, JobNotFound, ResultTimeout
from kubeq.gateway.jobs import parse_body
from kubeq.gateway.kube import Caller, Kube, Refused, Target
from kubeq.gateway.openapi import OPENAPI
from kubeq.store.jobfields import stored_json

MAX_WAIT = 60.0
"""The longest ``?wait=`` of a result request, in seconds."""


@dataclass
class Limits:
    max_body: int = 1 << 20
    """Bytes of a POST body at most (413 above)."""
    rate: float = 50.0
    """Requests per second per caller, sustained (429 above)."""
    burst: float = 100.0


class _Buckets:
    """A token bucket per caller."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, who: str) -> None:
        now = time.monotonic()
        tokens, last = self._state.get(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            raise Refused(429, f"more than {self.rate:g} requests/s from {who}; slow down")
        if len(self._state) > 10_000:
            self._state.clear()
        self._state[who] = (tokens - 1, now)


class Gateway:
    """The state behind the routes: the API server, the limits, one kubeq App per Redis."""

    def __init__(self, kube: Kube, limits: Limits) -> None:
        self.kube, self.limits = kube, limits
        self.buckets = _Buckets(limits.rate, limits.burst)
        self._apps: dict[Target, App] = {}

    def app_for(self, target: Target) -> App:
        app = self._apps.get(target)
        if app is None:
            partitions = (
                dict.fromkeys(target.queues, target.partitions) if target.partitions else None
            )
            app = App(
                target.redis_url,
                password=target.password,
                prefix=target.prefix,
                default_queue=target.queues[0],
                partitions=partitions,
            )
            self._apps[target] = app
        return app

    async def admit(self, request: Request, verb: str) -> tuple[Target, App]:
        """Token (401), rate (429), RBAC (403), TaskQueue (404), in that order."""
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise Refused(401, "send Authorization: Bearer <your ServiceAccount token>")
        caller: Caller = await run_in_threadpool(self.kube.authenticate, header[7:].strip())
        self.buckets.take(caller.username)
        ns, name = request.path_params["ns"], request.path_params["name"]
        await run_in_threadpool(self.kube.authorize, caller, verb, ns, name)
        target = await run_in_threadpool(self.kube.target, ns, name)
        return target, self.app_for(target)


def _refusal(exc: Refused) -> JSONResponse:
    body: dict[str, Any] = {"error": exc.reason}
    if exc.field:
        body["field"] = exc.field
    headers = {"Retry-After": "1"} if exc.status == 429 else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"the body is larger than {limit} bytes", "body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"the body is larger than {limit} bytes", "body")
        chunks.append(chunk)
    return b"".join(chunks)


def _queue(request: Request, target: Target) -> str:
    queue = request.query_params.get("queue", target.queues[0])
    base = queue.split("#", 1)[0]
    if base not in target.queues:
        raise Refused(400, f"queue {queue!r} is not a queue of this TaskQueue", "queue")
    return queue


def create_app(gateway: Gateway) -> Starlette:
    """The ASGI app of one gateway."""

    async def enqueue(request: Request) -> JSONResponse:
        try:
            raw = await _body(request, gateway.limits.max_body)
            target, app = await gateway.admit(request, "create")
            calls = parse_body(raw, target.queues, target.tasks)
            jobs = await app.aenqueue_many(calls)
        except Refused as exc:
            return _refusal(exc)
        return JSONResponse(
            {"jobs": [{"id": j.id, "queue": j.queue} for j in jobs]}, status_code=201
        )

    async def read(request: Request) -> JSONResponse:
        try:
            target, app = await gateway.admit(request, "get")
            job = app.job(request.path_params["id"], queue=_queue(request, target))
            info = await job.ainfo()
        except Refused as exc:
            return _refusal(exc)
        if info.status == "unknown":
            return _refusal(Refused(404, f"no job {job.id} in queue {job.queue!r}"))
        return JSONResponse(
            {
                "id": info.id,
                "queue": info.queue,
                "status": info.status,
                "task": info.task,
                "result": stored_json(info.result, None),
                "error": info.error or None,
                "reason": info.reason or None,
                "attempts": info.attempts,
                "enqueued_at": info.enqueued_at,
                "started_at": info.started_at,
                "finished_at": info.finished_at,
            }
        )

    async def result(request: Request) -> JSONResponse:
        try:
            target, app = await gateway.admit(request, "get")
            job = app.job(request.path_params["id"], queue=_queue(request, target))
            try:
                wait = float(request.query_params.get("wait", "0"))
            except ValueError:
                raise Refused(400, "wait must be a number of seconds", "wait") from None
            if not 0 <= wait <= MAX_WAIT:
                raise Refused(400, f"wait must be 0 to {MAX_WAIT:g} seconds", "wait")
            try:
                value = await job.aresult(timeout=max(wait, 0.01))
                reply: dict[str, Any] = {"status": "finished", "result": value}
            except ResultTimeout:
                reply = {"status": await job.astatus()}
            except JobFailed as exc:
                reply = {"status": "failed", "error": exc.error, "reason": exc.reason}
            except (JobCancelled, JobAborted, JobExpired):
                reply = {"status": await job.astatus()}
            except JobNotFound as exc:
                raise Refused(404, str(exc)) from None
        except Refused as exc:
            return _refusal(exc)
        return JSONResponse({"id": job.id, "queue": job.queue, **reply})

    async def cancel(request: Request) -> JSONResponse:
        try:
            target, app = await gateway.admit(request, "delete")
            job = app.job(request.path_params["id"], queue=_queue(request, target))
            abort = request.query_params.get("abort", "false").lower() in ("1", "true", "yes")
            try:
                stopped = await (job.aabort() if abort else job.acancel())
            except JobNotFound as exc:
                raise Refused(404, str(exc)) from None
        except Refused as exc:
            return _refusal(exc)
        return JSONResponse({"id": job.id, "queue": job.queue, "stopped": stopped})

    async def openapi(_request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI)

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    jobs = "/v1/namespaces/{ns}/taskqueues/{name}/jobs"
    return Starlette(
        routes=[
            Route(jobs, enqueue, methods=["POST"]),
            Route(jobs + "/{id}", read, methods=["GET"]),
            Route(jobs + "/{id}", cancel, methods=["DELETE"]),
            Route(jobs + "/{id}/result", result, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
