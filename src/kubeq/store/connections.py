"""Where the Redis URL comes from, how the password gets in, and how a URL is shown.

The URL defaults to ``KUBEQ_REDIS_URL``, else ``redis://localhost:6379/0``. A password kept
in a Kubernetes Secret arrives as ``KUBEQ_REDIS_PASSWORD`` and is passed to redis-py
separately, so it never appears in a URL, a log line or a process listing.
``rediss://`` URLs use TLS.

Redis Sentinel (high availability): ``redis+sentinel://sentinel-a:26379,sentinel-b:26379/mymaster/0``
(``rediss+sentinel://`` for TLS to the master). The client asks the sentinels for the master of
the named service and, after a failover, finds the new one by itself on its next connection.
The master's password comes as for a single Redis; the sentinels' own password, if they have
one, from ``KUBEQ_REDIS_SENTINEL_PASSWORD`` (or ``?sentinel_password=`` in the URL).

Redis Cluster (sharding): ``redis+cluster://node-a:6379,node-b:6379`` (``rediss+cluster://``
for TLS); the client and what kubeq splits by slot are in ``rediscluster``. A cluster client is
handed out typed as ``redis.Redis``: it answers the same commands kubeq sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import weakref
from collections.abc import AsyncGenerator
from typing import Any, cast

import redis
import redis.asyncio
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from kubeq import defaults
from kubeq.store import cluster as rediscluster
from kubeq.store.urls import (
    SentinelTarget,
    parse_cluster_url,
    parse_sentinel_url,
    resolve_url,
)

_HIREDIS_SERIALIZER: Any
try:
    from redis.connection import HiredisRespSerializer
    from redis.utils import HIREDIS_AVAILABLE

    # typed in some redis-py releases, not in others: unused-ignore keeps both clean
    _HIREDIS_SERIALIZER = (
        HiredisRespSerializer()  # type: ignore[no-untyped-call, unused-ignore]
        if HIREDIS_AVAILABLE
        else None
    )
except ImportError:  # a redis-py without it: its own packer
    _HIREDIS_SERIALIZER = None
if _HIREDIS_SERIALIZER is not None:
    from hiredis import pack_command as _hiredis_pack_command


def _options(extra: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_connect_timeout": 5.0,
        # above the longest blocking wait kubeq issues (5 s in job.result), below what
        # would make a dead connection hang a worker for long
        "socket_timeout": 15.0,
        "health_check_interval": 15,
        "retry_on_timeout": False,
    }
    password = os.environ.get("KUBEQ_REDIS_PASSWORD")
    if password:
        options["password"] = password
    options.update(extra)
    return options


def sync_client(url: str | None = None, **extra: Any) -> redis.Redis:
    """A redis-py client (bytes responses) for the resolved URL."""
    resolved = resolve_url(url)
    cluster = parse_cluster_url(resolved)
    if cluster is not None:
        return cast(redis.Redis, rediscluster.sync_cluster(cluster, _options(extra)))
    target = parse_sentinel_url(resolved)
    if target is not None:
        # typed in newer redis-py releases only (so are the next two calls of this file)
        sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            target.sentinels, sentinel_kwargs=_sentinel_kwargs(target), **_sentinel_options()
        )
        master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]
            target.service, **_master_options(target, extra)
        )
        return master
    # annotated: some redis-py releases (6.0) type from_url's client as Any
    client: redis.Redis = redis.Redis.from_url(resolved, **_options(extra))
    return client


def hiredis_packing(client: Any) -> Any:
    """``client`` with its pool's connections packing commands with hiredis's C packer, as
    redis-py's sync connections already do when hiredis is installed (its asyncio ones pack
    in Python: a worker's ack of 60 jobs is 400 arguments, each through redis-py's encoder,
    which cost a worker more CPU per job than its own bookkeeping). The packer is redis-py's
    own (``HiredisRespSerializer``), so the bytes and the errors are the sync client's. A
    cluster client (a pool per node) is left as it is."""
    pool = getattr(client, "connection_pool", None)
    if _HIREDIS_SERIALIZER is not None and pool is not None:
        pool.connection_class = _hiredis_class(pool.connection_class)
    return client


@functools.cache
def _hiredis_class(base: type) -> type:
    pack = _HIREDIS_SERIALIZER.pack
    c_pack = _hiredis_pack_command

    class HiredisPacking(base):  # type: ignore[misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            # hiredis straight away for a command of one word whose arguments it takes
            # (str, bytes, int, float: every command kubeq sends); redis-py's packer for
            # the rest, which splits "SCRIPT LOAD" and converts a memoryview or raises
            # DataError as the sync client does (its per-argument pass in Python cost a
            # worker's ack of 60 jobs more than hiredis's packing)
            first = args[0]
            if first.__class__ is str and " " not in first:
                try:
                    return [c_pack(args)]
                except TypeError:
                    pass
            packed: list[bytes] = pack(*args)
            return packed

    HiredisPacking.__name__ = HiredisPacking.__qualname__ = f"Hiredis{base.__name__}"
    return HiredisPacking


def async_client(url: str | None = None, **extra: Any) -> redis.asyncio.Redis:
    """A redis-py asyncio client (bytes responses) for the resolved URL."""
    return cast(redis.asyncio.Redis, hiredis_packing(_async_client(url, **extra)))


def _async_client(url: str | None = None, **extra: Any) -> redis.asyncio.Redis:
    resolved = resolve_url(url)
    cluster = parse_cluster_url(resolved)
    if cluster is not None:
        return cast(redis.asyncio.Redis, rediscluster.async_cluster(cluster, _options(extra)))
    target = parse_sentinel_url(resolved)
    if target is not None:
        sentinel = AsyncSentinel(  # type: ignore[no-untyped-call, unused-ignore]
            target.sentinels, sentinel_kwargs=_sentinel_kwargs(target), **_sentinel_options()
        )
        amaster: redis.asyncio.Redis = sentinel.master_for(
            target.service, **_master_options(target, extra)
        )
        return amaster
    # annotated: redis-py before 7.2 types from_url's client as Any
    client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(resolved, **_options(extra))
    return client


def _sentinel_kwargs(target: SentinelTarget) -> dict[str, Any]:
    """How kubeq talks to the sentinels themselves: short timeouts, their own password."""
    kwargs: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 2.0}
    if target.sentinel_password:
        kwargs["password"] = target.sentinel_password
    return kwargs


def _sentinel_options() -> dict[str, Any]:
    return {"socket_connect_timeout": 5.0}


def _master_options(target: SentinelTarget, extra: dict[str, Any]) -> dict[str, Any]:
    options = _options(extra)
    options["db"] = target.db
    if target.username:
        options.setdefault("username", target.username)
    if target.password and "password" not in extra:
        options["password"] = target.password
    if target.ssl:
        options["ssl"] = True
    for key, value in target.options.items():  # e.g. ssl_ca_certs=/path
        options.setdefault(key, value)
    return options


_clients: dict[str | None, redis.Redis] = {}
_clients_lock = threading.Lock()


def shared_client(url: str | None) -> redis.Redis:
    """One client per URL and process, shared by the task threads (redis-py's pool is
    thread-safe); a process-pool child makes its own on first use."""
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = sync_client(url)
        return client


class _Held:
    """One loop's client, the process that made it, and the async generator that closes it
    when its loop shuts down."""

    __slots__ = ("client", "closer", "pid")

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.pid = os.getpid()
        self.client = client
        self.closer: AsyncGenerator[None, None] | None = None


class LoopClients:
    """One redis.asyncio client (so one connection pool) per event loop, made on first use
    and closed when that loop shuts down.

    An asyncio connection belongs to the loop that opened it: sharing one client between
    loops (a test's loop and an app's, or the threads of a server) fails with "attached to a
    different loop". Each loop gets its own client here. It is closed when its loop ends:
    ``asyncio.run`` (and ``asyncio.Runner``) close every async generator of the loop before
    closing the loop (``loop.shutdown_asyncgens``), and each client comes with one such
    generator whose ``finally`` closes it, so a script that calls ``asyncio.run`` again and
    again leaves no connection behind. ``aclose`` closes the running loop's client at once
    (a FastAPI lifespan's shutdown); a loop closed by hand without that shutdown has its client
    dropped at the next ``get`` (its sockets then close with the garbage). A forked process
    (uvicorn's ``--workers``, gunicorn) keys by pid too, so a child never reuses its parent's
    sockets.
    """

    def __init__(self, url: str | None = None, **extra: Any) -> None:
        self.url = url
        self.extra = extra
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Held] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> redis.asyncio.Redis:
        """The running loop's client (call it from a coroutine)."""
        loop = asyncio.get_running_loop()
        held = self._clients.get(loop)
        if held is None or held.pid != os.getpid():
            held = self._start(loop)
        return held.client

    def _start(self, loop: asyncio.AbstractEventLoop) -> _Held:
        for old in [other for other in list(self._clients) if other.is_closed()]:
            self._clients.pop(old, None)  # its loop ended without shutting its generators
        held = _Held(self._new_client())
        self._clients[loop] = held
        closer = held.closer = self._close_at_loop_end(loop, held)
        # run it up to its yield now: its first step registers it with the running loop
        # (the loop's asyncgen hooks), which closes it at shutdown_asyncgens
        with contextlib.suppress(StopIteration):
            step: Any = closer.asend(None)  # Any: typed as a bare Awaitable in older stubs
            step.send(None)
        return held

    async def _close_at_loop_end(
        self, loop: asyncio.AbstractEventLoop, held: _Held
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if self._clients.get(loop) is held:
                del self._clients[loop]
            if held.pid == os.getpid():  # a forked child never closes its parent's sockets
                await held.client.aclose()

    def _new_client(self) -> redis.asyncio.Redis:
        resolved = resolve_url(self.url)
        if parse_sentinel_url(resolved) is not None:  # the sentinels' own pool finds the master
            return async_client(resolved, **self.extra)
        if parse_cluster_url(resolved) is not None:  # a pool per node, its own
            return async_client(
                resolved, max_connections=defaults.ASYNC_MAX_CONNECTIONS, **self.extra
            )
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            resolved,
            max_connections=defaults.ASYNC_MAX_CONNECTIONS,
            timeout=None,  # wait for a free connection; callers bound their own waits
            **_options(self.extra),
        )
        return cast(redis.asyncio.Redis, hiredis_packing(redis.asyncio.Redis.from_pool(pool)))

    async def aclose(self) -> None:
        """Close the running loop's client now (a FastAPI lifespan's shutdown calls this); a
        later call on this loop makes a new one."""
        held = self._clients.get(asyncio.get_running_loop())
        if held is not None and held.closer is not None:
            await held.closer.aclose()
