"""Redis URLs: which server a URL names (one server, a Sentinel-watched master, or a Redis
Cluster), the default URL, and how a URL is shown without its secrets.

``redis://`` and ``rediss://`` name one server; ``redis+sentinel://`` and
``rediss+sentinel://`` a master found through Sentinel (docs/redis.md); ``redis+cluster://``
and ``rediss+cluster://`` the seed nodes of a Redis Cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from kubeq import defaults

DEFAULT_URL = defaults.REDIS_URL
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
"""URL schemes of a Redis Cluster, and whether its nodes are reached over TLS."""


def resolve_url(url: str | None = None) -> str:
    """The URL to use: the argument, else KUBEQ_REDIS_URL, else the local default."""
    return url or os.environ.get("KUBEQ_REDIS_URL") or DEFAULT_URL


_SECRET_PARAMS = {"password", "username", "user", "sentinel_password"}


def redact(url: str) -> str:
    """The URL with any password (in the user part or the query) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.query:
        query = [
            (k, "***" if k.lower() in _SECRET_PARAMS else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}:***@{hosts}")
    return urlunsplit(parts)


SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
"""URL schemes of a Sentinel-managed master, and whether the master is reached over TLS."""


@dataclass(frozen=True)
class SentinelTarget:
    """A ``redis+sentinel://`` URL, parsed."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    ssl: bool = False
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def parse_sentinel_url(url: str) -> SentinelTarget | None:
    """The parsed URL when it names a Sentinel-managed master, else None.
    Raises ValueError saying what is wrong with a malformed one."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        return None
    userinfo, at, hosts = parts.netloc.rpartition("@")
    sentinels: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item, "", "26379")
        if not host or not port.isdigit():
            raise ValueError(
                f"bad sentinel address {item!r} in {redact(url)}: use host:port, comma-separated, "
                "e.g. redis+sentinel://sentinel-a:26379,sentinel-b:26379/mymaster/0"
            )
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(
            f"name the master's service (and optionally the db) in {redact(url)}, "
            "e.g. redis+sentinel://sentinel-a:26379/mymaster/0"
        )
    user, _, password = userinfo.partition(":") if at else ("", "", "")
    query = dict(parse_qsl(parts.query))
    return SentinelTarget(
        sentinels=sentinels,
        service=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        ssl=SENTINEL_SCHEMES[parts.scheme],
        username=unquote(user) or None,
        password=unquote(password) or None,
        sentinel_password=query.pop("sentinel_password", None)
        or os.environ.get("KUBEQ_REDIS_SENTINEL_PASSWORD")
        or None,
        options=query,
    )


@dataclass(frozen=True)
class ClusterTarget:
    """A ``redis+cluster://`` URL, parsed."""

    nodes: list[tuple[str, int]]
    ssl: bool = False
    username: str | None = None
    password: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def parse_cluster_url(url: str) -> ClusterTarget | None:
    """The parsed URL when it names a Redis Cluster, else None. Raises ValueError saying what
    is wrong with a malformed one (the URL shown without its password)."""
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        return None
    userinfo, at, hosts = parts.netloc.rpartition("@")
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item, "", "6379")
        if not host or not port.isdigit():
            raise ValueError(
                f"bad cluster node address {item!r} in {redact(url)}: use host:port, "
                "comma-separated, e.g. redis+cluster://node-a:6379,node-b:6379"
            )
        nodes.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if path and path != ["0"]:
        raise ValueError(
            f"{redact(url)} names database {'/'.join(path)!r}: a Redis Cluster has only "
            "database 0; drop the path (redis+cluster://node-a:6379,node-b:6379)"
        )
    user, _, password = userinfo.partition(":") if at else ("", "", "")
    return ClusterTarget(
        nodes=nodes,
        ssl=CLUSTER_SCHEMES[parts.scheme],
        username=unquote(user) or None,
        password=unquote(password) or None,
        options=dict(parse_qsl(parts.query)),
    )
