"""The dashboard's ASGI application: configuration, routes, the live stream, security headers.

Starlette serves server-rendered Jinja2 pages (autoescaped: a job argument is text, never
markup) and one server-sent-events stream, ``/events``, that relays the shared ``Hub`` poll to
every open page. Static assets are files of this package, so nothing loads from a CDN.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubeq import defaults
from kubeq.client.app import App
from kubeq.dashboard import actions, pages
from kubeq.dashboard.data import Reader
from kubeq.dashboard.hub import Hub
from kubeq.dashboard.security import HEADERS, SESSION_COOKIE, Guard
from kubeq.store import connections

HERE = Path(__file__).parent


@dataclass
class Config:
    """How one dashboard runs (the ``kubeq dashboard`` options)."""

    redis_url: str | None = None
    prefix: str = defaults.PREFIX
    read_only: bool = False
    token: str | None = None
    trust_proxy: bool = False
    poll_seconds: float = defaults.DASHBOARD_POLL_SECONDS
    kubeconfig: str | None = None
    namespace: str | None = None
    cluster: bool = True
    """Try in-cluster config or a kubeconfig for the Scaling page."""


class Dashboard:
    """What every handler shares: the library App, the hub, the guard and the templates."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.guard = Guard(
            read_only=config.read_only, token=config.token, trust_proxy=config.trust_proxy
        )
        self.app = App(config.redis_url, prefix=config.prefix)
        self.reader = Reader(self.app)
        self.redis_shown = connections.redact(self.app.redis_url)
        self.cluster_api: Any = None
        reader = None
        if config.cluster:
            from kubeq.dashboard import cluster

            self.cluster_api = cluster.connect(config.kubeconfig)
            if self.cluster_api is not None:
                reader = cluster.ClusterReader(self.cluster_api, config.namespace)
        self.client = connections.async_client(config.redis_url)
        self.hub = Hub(self.client, config.prefix, config.poll_seconds, cluster=reader)
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        env.filters["ago"] = pages.ago
        env.filters["when"] = pages.when
        env.filters["mib"] = pages.mib
        self.templates = Jinja2Templates(env=env)

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        base = {
            "read_only": self.guard.read_only,
            "may_act": self.guard.may_act(request),
            "needs_login": bool(self.guard.token) and not self.guard.may_act(request),
            "csrf": self.guard.csrf_token(request),
            "redis": self.redis_shown,
            "prefix": self.config.prefix,
            "msg": request.query_params.get("msg", ""),
            "nav": name.removesuffix(".html"),
        }
        return self.templates.TemplateResponse(
            request, name, {**base, **context}, status_code=status
        )

    async def close(self) -> None:
        await self.hub.close()
        await self.client.aclose()
        self.app.close()


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


async def events(request: Request) -> Response:
    """Server-sent events: the shared poll's message about once a second."""
    dash: Dashboard = request.app.state.dash

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        async for data in dash.hub.subscribe():
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
