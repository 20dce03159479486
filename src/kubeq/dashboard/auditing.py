"""Who pressed a dashboard button, and the audit entry each action leaves (``kubeq audit``).

Behind an auth proxy (``--no-token``, the proxy checks users) the user is the one the proxy
names in ``X-Forwarded-User``, ``X-Auth-Request-User``, ``X-Auth-Request-Email``,
``X-Forwarded-Email`` or ``Remote-User`` (oauth2-proxy and most ingress auth set one);
with the shared action token it is ``dashboard-token@<client address>``.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from kubeq.dashboard.security import client_address
from kubeq.dashboard.state import Dashboard
from kubeq.store import audit

PROXY_USER_HEADERS = (
    "x-forwarded-user",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-forwarded-email",
    "remote-user",
)


def who(dash: Dashboard, request: Request) -> str:
    """The person behind a dashboard action, as well as the dashboard can tell."""
    if dash.guard.trust_proxy:
        for header in PROXY_USER_HEADERS:
            user = request.headers.get(header, "").strip()
            if user:
                return f"{user[:200]}@{client_address(request)}"
        return f"proxy-user@{client_address(request)}"
    return f"dashboard-token@{client_address(request)}"


async def recorded(
    dash: Dashboard, request: Request, action: str, target: str, count: int, queue: str
) -> None:
    """Record one dashboard action in the audit stream."""
    await run_in_threadpool(
        lambda: audit.record(
            dash.app.redis,
            dash.app.prefix,
            action,
            target,
            count,
            who(dash, request),
            queue=queue,
            via="dashboard",
        )
    )
