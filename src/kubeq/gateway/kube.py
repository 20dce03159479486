"""What the gateway asks the Kubernetes API: who a token is (TokenReview with the gateway's
audience), whether RBAC lets them act on a TaskQueue's jobs (SubjectAccessReview), and
where a TaskQueue's jobs live (its Redis, queues and declared tasks); and it posts an Event
on a TaskQueue for each admin action (a job cancelled or aborted). Answers are cached for a
few seconds, so a burst of requests costs the API server one review each. An API server that
does not answer (or answers 5xx) is a Refused(503) with a Retry-After, never a bare 500."""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubeq import crd, defaults

log = logging.getLogger(__name__)

UNAVAILABLE_RETRY_SECONDS = 5
"""The Retry-After of a 503: the API server (or a TaskQueue's Redis) did not answer."""


class Refused(Exception):
    """A request the gateway refuses: its HTTP status, a reason, the field at fault, and for
    a 429 or 503 the seconds after which a retry may succeed (``Retry-After``)."""

    def __init__(
        self,
        status: int,
        reason: str,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.retry_after = retry_after


@dataclass(frozen=True)
class Caller:
    """An authenticated caller, as the TokenReview named it."""

    username: str
    uid: str
    groups: tuple[str, ...]
    extra: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Target:
    """Where a TaskQueue's jobs live."""

    redis_url: str
    password: str | None
    prefix: str
    queues: tuple[str, ...]
    partitions: int
    tasks: tuple[str, ...] = ()
    """The task names the TaskQueue declares (``spec.tasks``); empty: any."""


class _Cache:
    """A small TTL cache, safe across the threads the reviews run on."""

    def __init__(self, seconds: float, size: int = 10_000) -> None:
        self.seconds, self.size = seconds, size
        self._items: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0] < time.monotonic():
                return None
            return hit[1]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            if len(self._items) >= self.size:
                self._items.clear()
            self._items[key] = (time.monotonic() + self.seconds, value)


class Kube:
    """The gateway's view of the API server (``api`` is a kubernetes ApiClient)."""

    def __init__(
        self, api: Any, audience: str, cache_seconds: float = 10.0, timeout: float = 10.0
    ) -> None:
        """``timeout``: seconds an API server call may take before it is a 503."""
        import urllib3  # noqa: PLC0415 - kubernetes' HTTP client
        from kubernetes import client  # noqa: PLC0415 - optional extra (kubeq[gateway])

        self.k = client
        self._down: tuple[type[Exception], ...] = (OSError, urllib3.exceptions.HTTPError)
        self.authn = client.AuthenticationV1Api(api)
        self.authz = client.AuthorizationV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.audience = audience
        self.timeout = timeout
        self._callers = _Cache(cache_seconds)
        self._decisions = _Cache(cache_seconds)
        self._targets = _Cache(cache_seconds)

    def known(self, token: str) -> bool:
        """Whether ``token``'s review (accepted or refused) is cached: answering it costs the
        API server nothing."""
        return self._callers.get(_token_key(token)) is not None

    def authenticate(self, token: str) -> Caller:
        """The caller a token belongs to, or Refused(401) saying why not (a refusal is
        cached by the token's hash, as an acceptance is)."""
        key = _token_key(token)
        cached = self._callers.get(key)
        if isinstance(cached, Caller):
            return cached
        if isinstance(cached, Refused):
            raise cached
        review = self.k.V1TokenReview(
            spec=self.k.V1TokenReviewSpec(token=token, audiences=[self.audience])
        )
        status: Any = self._api("TokenReview", self.authn.create_token_review, review).status
        if not status.authenticated or self.audience not in (status.audiences or []):
            refused = Refused(
                401,
                f"the token was not accepted for audience {self.audience!r}: "
                f"{status.error or 'not authenticated'}; mount a projected ServiceAccount "
                f"token with audience {self.audience!r}",
            )
            self._callers.put(key, refused)
            raise refused
        user: Any = status.user
        extra = tuple(sorted((k, tuple(v)) for k, v in (user.extra or {}).items()))
        caller = Caller(str(user.username), user.uid or "", tuple(user.groups or ()), extra)
        self._callers.put(key, caller)
        return caller

    def authorize(self, caller: Caller, verb: str, namespace: str, name: str) -> None:
        """Refused(403) unless RBAC lets ``caller`` ``verb`` the jobs of that TaskQueue."""
        key = (caller, verb, namespace, name)
        allowed = self._decisions.get(key)
        if allowed is None:
            review = self.k.V1SubjectAccessReview(
                spec=self.k.V1SubjectAccessReviewSpec(
                    user=caller.username,
                    uid=caller.uid or None,
                    groups=list(caller.groups),
                    extra={k: list(v) for k, v in caller.extra} or None,
                    resource_attributes=self.k.V1ResourceAttributes(
                        group=crd.GROUP,
                        resource=crd.PLURAL,
                        subresource="jobs",
                        verb=verb,
                        namespace=namespace,
                        name=name,
                    ),
                )
            )
            status: Any = self._api(
                "SubjectAccessReview", self.authz.create_subject_access_review, review
            ).status
            allowed = (bool(status.allowed), status.reason or "")
            self._decisions.put(key, allowed)
        if not allowed[0]:
            raise Refused(
                403,
                f"{caller.username} may not {verb} {crd.PLURAL}/jobs of TaskQueue "
                f"{namespace}/{name} (group {crd.GROUP}); bind a Role granting it"
                + (f" ({allowed[1]})" if allowed[1] else ""),
            )

    def post_event(self, namespace: str, name: str, reason: str, message: str) -> None:
        """A Normal Event on TaskQueue ``namespace/name`` (an admin action through the
        gateway); a failure is logged, never raised: the action itself is done."""
        now = datetime.now(UTC).isoformat()
        body: Any = {
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": crd.API_VERSION,
                "kind": crd.KIND,
                "name": name,
                "namespace": namespace,
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Normal",
            "source": {"component": "kubeq-gateway"},
            "reportingComponent": "kubeq-gateway",
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(namespace, body, _request_timeout=self.timeout)
        except (self.k.ApiException, *self._down) as exc:  # type: ignore[misc, unused-ignore]
            log.warning("could not post the %s Event on %s/%s: %s", reason, namespace, name, exc)

    def target(self, namespace: str, name: str) -> Target:
        """The Redis and queues of a TaskQueue, or Refused(404)."""
        key = (namespace, name)
        cached = self._targets.get(key)
        if isinstance(cached, Target):
            return cached
        try:
            obj = self.custom.get_namespaced_custom_object(
                crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name, _request_timeout=self.timeout
            )
        except self.k.ApiException as exc:
            if exc.status == 404:
                raise Refused(404, f"no TaskQueue {namespace}/{name}") from None
            raise self._unavailable(f"reading TaskQueue {namespace}/{name}", exc) from None
        except self._down as exc:
            raise self._unavailable(f"reading TaskQueue {namespace}/{name}", exc) from None
        spec: dict[str, Any] = obj.get("spec") or {}  # type: ignore[attr-defined, unused-ignore]
        redis_doc = spec.get("redis") or {}
        target = Target(
            redis_url=str(redis_doc.get("url") or ""),
            password=self._password(namespace, redis_doc.get("secretRef")),
            prefix=str(redis_doc.get("prefix") or defaults.PREFIX),
            queues=tuple(str(q) for q in spec.get("queues") or [defaults.QUEUE]),
            partitions=int(spec.get("partitions") or 0),
            tasks=tuple(str(t) for t in spec.get("tasks") or ()),
        )
        if not target.redis_url:
            raise Refused(503, f"TaskQueue {namespace}/{name} has no spec.redis.url")
        self._targets.put(key, target)
        return target

    def _api(self, what: str, call: Any, *args: Any) -> Any:
        """``call(*args)`` on the API server; Refused(503) when it is unreachable or fails."""
        try:
            return call(*args, _request_timeout=self.timeout)
        except self.k.ApiException as exc:
            raise self._unavailable(what, exc) from None
        except self._down as exc:
            raise self._unavailable(what, exc) from None

    def _unavailable(self, what: str, exc: Exception) -> Refused:
        status = getattr(exc, "status", None)
        detail = f"HTTP {status} {getattr(exc, 'reason', '')}".strip() if status else repr(exc)
        if status and status < 500 and status != 429:  # the gateway's own RBAC or a bug
            return Refused(500, f"the Kubernetes API server refused {what}: {detail}")
        return Refused(
            503,
            f"the Kubernetes API server is unavailable ({what}: {detail}); retry later",
            retry_after=UNAVAILABLE_RETRY_SECONDS,
        )

    def _password(self, namespace: str, ref: Any) -> str | None:
        if not isinstance(ref, dict) or not ref.get("name"):
            return None
        secret = self._api(
            f"reading Secret {namespace}/{ref['name']}",
            self.core.read_namespaced_secret,
            ref["name"],
            namespace,
        )
        raw = (secret.data or {}).get(ref.get("key") or "password")
        return base64.b64decode(raw).decode() if raw else None


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
