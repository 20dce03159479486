"""The dashboard's ASGI application: routes, the live stream, security headers.

Starlette serves server-rendered Jinja2 pages (autoescaped: a job argument is text, never
markup) and one server-sent-events stream, ``/events``, that relays the shared ``Hub`` poll to
every open page. Static assets are files of this package, so nothing loads from a CDN.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubeq import defaults
from kubeq.dashboard import actions, auditing, pages, schedules, search
from kubeq.dashboard.hub import View
from kubeq.dashboard.security import HEADERS, SESSION_COOKIE
from kubeq.dashboard.state import HERE, Config, Dashboard
from kubeq.store.keys import validate_queue_name


class SecurityHeaders:
    """Adds HEADERS to every response and hands a new visitor its session cookie."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for k, v in HEADERS.items():
                    if k.lower().encode() not in names:
                        headers.append((k.encode(), v.encode()))
                sid = scope.get("kubeq_new_session")
                if sid:
                    cookie = f"{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict"
                    headers.append((b"set-cookie", cookie.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def view_of(request: Request) -> View:
    """What the page opening ``/events`` shows: ``?q=NAME`` per queue on screen (at most
    one overview page of them), ``workers=1``, ``cluster=1``. ValueError when malformed."""
    names = request.query_params.getlist("q")
    if len(names) > defaults.DASHBOARD_QUEUES_PAGE:
        raise ValueError(
            f"{len(names)} queues asked for: a page shows at most "
            f"{defaults.DASHBOARD_QUEUES_PAGE} (q=NAME, one per queue on screen)"
        )
    return View(
        queues=tuple(dict.fromkeys(validate_queue_name(n) for n in names)),
        workers=request.query_params.get("workers") == "1",
        cluster=request.query_params.get("cluster") == "1",
    )


async def events(request: Request) -> Response:
    """Server-sent events: the shared poll's message for this page, about once a second."""
    dash: Dashboard = request.app.state.dash
    try:
        view = view_of(request)
    except ValueError as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        async for data in dash.hub.subscribe(view):
            yield b"data: " + data + b"\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def create_app(config: Config) -> Starlette:
    """The ASGI app for ``config``; raises ValueError for an unsafe configuration."""
    dash = Dashboard(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await dash.close()

    routes = [
        Route("/", pages.overview),
        Route("/queues/{queue}", pages.queue),
        Route("/workers", pages.workers),
        Route("/jobs", pages.job_search),
        Route("/jobs/{queue}/{job_id}", pages.job),
        Route("/jobs/{queue}/{job_id}/result", pages.job_result),
        Route("/dead", pages.dead),
        Route("/scaling", pages.scaling),
        Route("/schedules", schedules.page),
        Route("/find", search.page),
        Route("/audit", auditing.page),
        Route("/find/{action:str}", search.bulk, methods=["POST"]),
        Route("/schedules/{schedule}/{action:str}", schedules.action, methods=["POST"]),
        Route("/events", events),
        Route("/healthz", healthz),
        Route("/login", pages.login_form),
        Route("/login", actions.login, methods=["POST"]),
        Route("/logout", actions.logout, methods=["POST"]),
        Route("/queues/{queue}/{action:str}", actions.queue_action, methods=["POST"]),
        Route("/jobs/{queue}/{job_id}/{action:str}", actions.job_action, methods=["POST"]),
        Route("/dead/{queue}/{action:str}", actions.dead_action, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)], lifespan=lifespan)
    app.state.dash = dash
    return app
