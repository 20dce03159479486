"""Who may press a button: read-only mode, the action token, CSRF and response headers.

Safe by default. Actions (pause, purge, cancel, requeue) exist only when the dashboard is not
read-only, and then need either a login with ``KUBEQ_DASHBOARD_TOKEN`` or an explicit
``--no-token`` for a dashboard that sits behind the cluster's auth proxy. Every visitor gets a
random session id in an HttpOnly, SameSite=Strict cookie; each form carries an HMAC of that id
(the CSRF token), and a POST whose token, or whose Origin, does not match is refused. A login
issues a new session id (a session id planted before the login never gains the actions), and
failed logins are throttled per client address (``LoginThrottle``: 429 with Retry-After).
Pages are served with a Content-Security-Policy that allows only the dashboard's own
scripts, so even a job argument that slipped past escaping could not run.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request

from kubeq import defaults

SESSION_COOKIE = "kubeq_dashboard_session"

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    """An action that may not run; the message says why and what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LoginThrottle:
    """At most ``limit`` failed logins per client address within ``window`` seconds.

    Memory is bounded: at most ``clients`` addresses are remembered (the oldest forgotten).
    """

    def __init__(
        self,
        limit: int = defaults.DASHBOARD_LOGIN_FAILURES,
        window: float = defaults.DASHBOARD_LOGIN_WINDOW,
        clients: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clients = clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again (0: now)."""
        now = time.monotonic()
        times = self._recent(client, now)
        if len(times) < self.limit:
            return 0
        return max(1, math.ceil(self.window - (now - times[0])))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        times = self._recent(client, now)
        times.append(now)
        self._failures[client] = times
        self._failures.move_to_end(client)
        while len(self._failures) > self.clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


def client_address(request: Request) -> str:
    """The address failed logins are counted against (the TCP peer)."""
    return request.client.host if request.client else "unknown"


@dataclass
class Guard:
    """The dashboard's access rules, fixed at start."""

    read_only: bool
    token: str | None = None
    """Actions need a login with this token; None with ``trust_proxy`` lets anyone act."""
    trust_proxy: bool = False
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    _logged_in: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.read_only and not self.token and not self.trust_proxy:
            raise ValueError(
                "actions need a token: set KUBEQ_DASHBOARD_TOKEN, or pass --read-only, or "
                "--no-token if an auth proxy in front of the dashboard already checks users"
            )

    @property
    def actions(self) -> bool:
        """Whether pages show action buttons at all."""
        return not self.read_only

    def session_id(self, request: Request) -> str:
        """The visitor's session id (set by the middleware when it was missing)."""
        sid = request.cookies.get(SESSION_COOKIE, "")
        if len(sid) == 43 and sid.replace("-", "").replace("_", "").isalnum():
            return sid
        return str(request.scope.setdefault("kubeq_new_session", secrets.token_urlsafe(32)))

    def csrf_token(self, request: Request) -> str:
        sid = self.session_id(request)
        return hmac.new(self.secret, b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()

    def may_act(self, request: Request) -> bool:
        """Whether this visitor sees working buttons (logged in, or no token needed)."""
        if self.read_only:
            return False
        return self.trust_proxy or self.session_id(request) in self._logged_in

    def _new_session(self, request: Request) -> str:
        """A fresh session id for this visitor (the middleware sets its cookie)."""
        self._logged_in.discard(self.session_id(request))
        sid = secrets.token_urlsafe(32)
        request.scope["kubeq_new_session"] = sid
        return sid

    def login(self, request: Request, token: str) -> bool:
        """Log this visitor in under a new session id if ``token`` is right."""
        if self.read_only or not self.token:
            return False
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return False
        self._logged_in.add(self._new_session(request))
        return True

    def logout(self, request: Request) -> None:
        self._new_session(request)

    def check_post(self, request: Request, form_token: str, *, action: bool = True) -> None:
        """Raise Refused unless this POST may run: same origin, valid CSRF token, allowed."""
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
            raise Refused(403, "cross-origin request refused (CSRF protection)")
        expected = self.csrf_token(request)
        if not form_token or not hmac.compare_digest(form_token, expected):
            raise Refused(
                403, "missing or stale CSRF token: reload the page and submit the form again"
            )
        if not action:
            return
        if self.read_only:
            raise Refused(403, "this dashboard is read-only (started with --read-only)")
        if not self.may_act(request):
            raise Refused(401, "log in with the dashboard token (KUBEQ_DASHBOARD_TOKEN) first")
