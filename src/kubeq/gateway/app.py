"""The gateway's ASGI app (Starlette): routes, the order of checks (size, token, rate, RBAC,
TaskQueue, input) and the replies. Every refusal is JSON ``{"error", "field"?}`` with its
status (429 and 503 with ``Retry-After``); ``/openapi.json`` describes the API
(``openapi.py``). Each TaskQueue gets its own kubeq App (Redis clients named
``kubeq-gateway:<ns>/<name>``), closed when the TaskQueue goes away or its Redis changes,
and all of them when the gateway shuts down."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlsplit

import redis.exceptions
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kubeq.client.app import App
from kubeq.client.pools import UnknownWorkerPool
from kubeq.errors import JobAborted, JobCancelled, JobExpired, JobFailed, JobNotFound, ResultTimeout
from kubeq.gateway.jobs import parse_body
from kubeq.gateway.kube import UNAVAILABLE_RETRY_SECONDS, Caller, Kube, Refused, Target
from kubeq.gateway.limits import Buckets, Limits, Unauthenticated, too_many
from kubeq.gateway.openapi import OPENAPI
from kubeq.gateway.params import job_id, query
from kubeq.gateway.signals import parse_signal
from kubeq.store import audit
from kubeq.store.jobfields import stored_json

log = logging.getLogger("kubeq.gateway")

__all__ = ["Gateway", "Limits", "create_app"]


class Gateway:
    """The state behind the routes: the API server, the limits, one kubeq App per
    TaskQueue."""

    def __init__(self, kube: Kube, limits: Limits) -> None:
        self.kube, self.limits = kube, limits
        self.callers = Buckets(limits.rate, limits.burst)
        self.unauthenticated = Unauthenticated(limits)
        self._apps: dict[tuple[str, str], tuple[Target, App]] = {}

    async def app_for(self, key: tuple[str, str], target: Target) -> App:
        """The App of TaskQueue ``key``; a new one (the old one closed) when its target
        changed."""
        held = self._apps.get(key)
        if held is not None and held[0] == target:
            return held[1]
        partitions = dict.fromkeys(target.queues, target.partitions) if target.partitions else None
        app = App(
            _named(target.redis_url, f"kubeq-gateway:{key[0]}/{key[1]}"),
            password=target.password,
            prefix=target.prefix,
            default_queue=target.queues[0],
            partitions=partitions,
        )
        self._apps[key] = (target, app)
        if held is not None:  # replaced before this await: no other request picks it up
            await _close(held[1])
        return app

    async def forget(self, key: tuple[str, str]) -> None:
        """Close the App of a TaskQueue that is gone."""
        held = self._apps.pop(key, None)
        if held is not None:
            await _close(held[1])

    async def aclose(self) -> int:
        """Close every App (the gateway is shutting down); how many there were."""
        keys = list(self._apps)
        for key in keys:
            await self.forget(key)
        return len(keys)

    async def authenticate(self, request: Request) -> Caller:
        """The caller of a request (401), bounding the reviews unknown tokens cost (429)."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token:
            raise Refused(401, "send Authorization: Bearer <your ServiceAccount token>")
        source = request.client.host if request.client else "unknown"
        reviewed = self.kube.known(token)  # then answered from the cache, at no cost
        if not reviewed:
            self.unauthenticated.check(source)
        try:
            caller: Caller = await run_in_threadpool(self.kube.authenticate, token)
        except Refused as exc:
            if exc.status == 401 and not reviewed:
                self.unauthenticated.refused(source)
            raise
        return caller

    async def admit(self, request: Request, verb: str) -> tuple[Target, App]:
        """Token (401), rate (429), RBAC (403), TaskQueue (404), in that order."""
        caller = await self.authenticate(request)
        wait = self.callers.take(caller.username)
        if wait:
            rate = self.limits.rate
            raise too_many(f"more than {rate:g} requests/s from {caller.username}", wait)
        ns, name = request.path_params["ns"], request.path_params["name"]
        await run_in_threadpool(self.kube.authorize, caller, verb, ns, name)
        request.state.caller = caller  # named in the audit entry of an admin action
        try:
            target = await run_in_threadpool(self.kube.target, ns, name)
        except Refused as exc:
            if exc.status == 404:
                await self.forget((ns, name))
            raise
        return target, await self.app_for((ns, name), target)


async def audited(
    kube: Kube, request: Request, app: App, action: str, job_id: str, queue: str
) -> None:
    """Record an admin action in the TaskQueue's audit stream, naming the caller, and post
    it as an Event on the TaskQueue."""
    who = request.state.caller.username
    ns, name = request.path_params["ns"], request.path_params["name"]
    await audit.arecord(app.aredis, app.prefix, action, job_id, 1, who, queue=queue, via="gateway")
    message = f"{who} ({action}) job {job_id} of queue {queue} through kubeq-gateway"
    reason = {"job.cancel": "JobCancelled", "job.abort": "JobAborted"}[action]
    await run_in_threadpool(kube.post_event, ns, name, reason, message)


async def _close(app: App) -> None:
    await app.aclose()
    app.close()


def _named(url: str, name: str) -> str:
    """``url`` naming its connections (CLIENT LIST) when it is a plain redis:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or parts.query:
        return url
    return f"{url}?client_name={quote(name, safe='')}"


def _refusal(exc: Refused) -> JSONResponse:
    body: dict[str, Any] = {"error": exc.reason}
    if exc.field:
        body["field"] = exc.field
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
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


def _queue(request: Request, target: Target, given: str | None) -> str:
    queue = given or target.queues[0]
    if queue.split("#", 1)[0].split("@", 1)[0] not in target.queues:  # a partition, a pool's
        raise Refused(
            400,
            f"queue {queue!r} is not a queue of this TaskQueue ({', '.join(target.queues)})",
            "queue",
        )
    return queue


def create_app(gateway: Gateway) -> Starlette:
    """The ASGI app of one gateway."""

    async def enqueue(request: Request) -> JSONResponse:
        raw = await _body(request, gateway.limits.max_body)
        target, app = await gateway.admit(request, "create")
        query(request.query_params, ())
        calls = parse_body(raw, target.queues, target.tasks)
        try:
            jobs = await app.aenqueue_many(calls)
        except UnknownWorkerPool as exc:
            raise Refused(400, str(exc), "worker_pool") from None
        return JSONResponse(
            {"jobs": [{"id": j.id, "queue": j.queue} for j in jobs]}, status_code=201
        )

    async def read(request: Request) -> JSONResponse:
        target, app = await gateway.admit(request, "get")
        params = query(request.query_params, ("queue",))
        queue = _queue(request, target, params.queue)
        job = app.job(job_id(request.path_params["id"]), queue=queue)
        info = await job.ainfo()
        if info.status == "unknown":
            raise Refused(404, f"no job {job.id} in queue {job.queue!r}")
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
                "waiting_for": info.waiting_for or None,
                "sleep_until": info.sleep_until,
            }
        )

    async def result(request: Request) -> JSONResponse:
        target, app = await gateway.admit(request, "get")
        params = query(request.query_params, ("queue", "wait"))
        queue = _queue(request, target, params.queue)
        job = app.job(job_id(request.path_params["id"]), queue=queue)
        try:
            value = await job.aresult(timeout=max(params.wait, 0.01))
            reply: dict[str, Any] = {"status": "finished", "result": value}
        except ResultTimeout:
            reply = {"status": await job.astatus()}
        except JobFailed as exc:
            reply = {"status": "failed", "error": exc.error, "reason": exc.reason}
        except (JobCancelled, JobAborted, JobExpired):
            reply = {"status": await job.astatus()}
        except JobNotFound as exc:
            raise Refused(404, str(exc)) from None
        return JSONResponse({"id": job.id, "queue": job.queue, **reply})

    async def cancel(request: Request) -> JSONResponse:
        target, app = await gateway.admit(request, "delete")
        params = query(request.query_params, ("queue", "abort"))
        queue = _queue(request, target, params.queue)
        job = app.job(job_id(request.path_params["id"]), queue=queue)
        try:
            stopped = await (job.aabort() if params.abort else job.acancel())
        except JobNotFound as exc:
            raise Refused(404, str(exc)) from None
        if stopped:
            verb = "abort" if params.abort else "cancel"
            await audited(gateway.kube, request, app, f"job.{verb}", job.id, job.queue)
        return JSONResponse({"id": job.id, "queue": job.queue, "stopped": stopped})

    async def signal(request: Request) -> JSONResponse:
        raw = await _body(request, gateway.limits.max_body)
        target, app = await gateway.admit(request, "update")
        query(request.query_params, ())
        sig = parse_signal(raw, target.queues)
        assert sig.queue is not None
        key = sig.key
        if sig.job is not None:  # the key the job waits for
            info = await app.job(sig.job, queue=sig.queue).ainfo()
            if info.status == "unknown":
                raise Refused(404, f"no job {sig.job} in queue {sig.queue!r}")
            if info.status != "sleeping" or not info.waiting_for:
                reason = f"job {sig.job} does not wait for a signal (status {info.status})"
                raise Refused(409, reason, "job")
            key = info.waiting_for
        assert key is not None
        queue = sig.queue.split("#", 1)[0]
        try:
            woke = await app.asignal(key, sig.payload, queue=queue, mode=sig.mode, ttl=sig.ttl)
        except ValueError as exc:  # mode one on a partitioned queue
            raise Refused(400, str(exc), "mode") from None
        return JSONResponse({"key": key, "queue": queue, "woke": woke})

    async def openapi(_request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI)

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def refused(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Refused)
        return _refusal(exc)

    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        ns, name = request.path_params.get("ns"), request.path_params.get("name")
        return _refusal(
            Refused(
                503,
                f"the Redis of TaskQueue {ns}/{name} is unavailable ({exc}); retry later",
                retry_after=UNAVAILABLE_RETRY_SECONDS,
            )
        )

    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": f"the gateway failed: {exc!r}"}, status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            count = await gateway.aclose()
            log.info("closed the Redis clients of %d TaskQueue(s)", count)

    jobs = "/v1/namespaces/{ns}/taskqueues/{name}/jobs"
    return Starlette(
        routes=[
            Route(jobs, enqueue, methods=["POST"]),
            Route(jobs + "/{id}", read, methods=["GET"]),
            Route(jobs + "/{id}", cancel, methods=["DELETE"]),
            Route(jobs + "/{id}/result", result, methods=["GET"]),
            Route("/v1/namespaces/{ns}/taskqueues/{name}/signals", signal, methods=["POST"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        exception_handlers={
            Refused: refused,
            redis.exceptions.ConnectionError: redis_down,
            redis.exceptions.TimeoutError: redis_down,
            Exception: failed,
        },
        lifespan=lifespan,
    )
