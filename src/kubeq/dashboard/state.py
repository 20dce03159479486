"""What every dashboard handler shares: its configuration (``Config``, the ``kubeq dashboard``
options) and ``Dashboard``: the library App, the shared poll (``Hub``), the guard and the
templates, with ``render`` for a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from kubeq import defaults
from kubeq.client.app import App
from kubeq.dashboard import cluster
from kubeq.dashboard.data import Reader
from kubeq.dashboard.format import ago, mib, when
from kubeq.dashboard.hub import Hub
from kubeq.dashboard.security import Guard
from kubeq.store import connections, urls

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


def segment(value: object) -> str:
    """``value`` quoted as one URL path segment (a partition's ``#`` becomes ``%23``)."""
    return quote(str(value), safe="")


class Dashboard:
    """What every handler shares: the library App, the hub, the guard and the templates."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.guard = Guard(
            read_only=config.read_only, token=config.token, trust_proxy=config.trust_proxy
        )
        self.app = App(config.redis_url, prefix=config.prefix)
        self.reader = Reader(self.app)
        self.redis_shown = urls.redact(self.app.redis_url)
        self.cluster_api: Any = None
        reader = None
        if config.cluster:
            self.cluster_api = cluster.connect(config.kubeconfig)
            if self.cluster_api is not None:
                reader = cluster.ClusterReader(self.cluster_api, config.namespace)
        self.cluster_reader: cluster.ClusterReader | None = reader
        self.client = connections.async_client(config.redis_url)
        self.hub = Hub(self.client, config.prefix, config.poll_seconds, cluster=reader)
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        env.filters["ago"] = ago
        env.filters["when"] = when
        env.filters["mib"] = mib
        env.filters["seg"] = segment
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
