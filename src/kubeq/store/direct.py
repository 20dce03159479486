"""Script calls of an asyncio client written the moment they are made, before any await.

redis-py's asyncio ``Pipeline.execute`` (and ``execute_command``) takes a connection with the
pool's ``get_connection``, which probes it for an unread reply with a read under a zero
timeout. That read yields to the event loop: every callback ready at that moment runs before
the commands reach the socket. In a worker those callbacks are the jobs its last fetch
started, so all of them ran before Redis saw the next fetch, and the worker and Redis took
turns instead of working at once (bench/README.md, "Worker and Redis at once").

Here, for a plain ``redis.asyncio.Redis`` on the default pool (from a URL, or
Sentinel-managed), the connection is taken from the same pool with its synchronous
``get_available_connection``, the commands are handed to the socket at once, the replies
are read, and the connection goes back, as the pool's path does it; only the probe is left
out. The probe guards against a reply left unread by an earlier user of the connection, and
there is none: redis-py's ``read_response`` drops the connection on any error or
interruption, and so does a failed write here. What is checked without yielding is: a
connection the server closed while it sat in the pool is opened again, and one idle for
longer than its health-check interval is pinged first. An error is raised as the pool's path
raises it (a client made from a URL retries nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ResponseError

__all__ = ["plain", "run_direct"]

_POOLS = (redis.asyncio.ConnectionPool, SentinelConnectionPool)
"""Pools whose ``get_available_connection`` hands out a connection as ``get_connection``
does (a ``BlockingConnectionPool`` waits for one instead: its calls take the pool's path)."""


def plain(client: Any) -> bool:
    """Whether ``run_direct`` writes ``client``'s commands itself: a plain asyncio client on
    a default pool (not a cluster client, a single-connection client in MULTI or WATCH, a
    subclass, or a blocking pool)."""
    if type(client) is not redis.asyncio.Redis or client.connection is not None:
        return False
    return type(client.connection_pool) in _POOLS


async def run_direct(client: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any] | None:
    """Send ``commands`` in one write and read their replies (an error reply in its place,
    as ``execute(raise_on_error=False)`` gives it); None when ``client`` is not ``plain``:
    then the caller takes the pool's path. A blocking command among them holds the
    connection until it returns, and Redis runs the commands after it the moment it does."""
    if not plain(client):
        return None
    pool: Any = client.connection_pool
    conn = pool.get_available_connection()
    try:
        if conn.is_connected and (conn._writer.transport.is_closing() or conn._reader.at_eof()):
            await conn.disconnect(nowait=True)  # the server closed it while it sat in the pool
        if not conn.is_connected:
            await conn.connect()
        else:
            await conn.check_health()  # returns at once unless the connection sat idle
        await _write(conn, conn.pack_commands(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:  # Redis answered in full: the connection is clean
                replies.append(exc)
        return replies
    finally:
        await pool.release(conn)


async def _write(conn: Any, chunks: list[bytes]) -> None:
    """Hand the packed commands to the transport before any await (it sends what the socket
    takes at once and buffers the rest), then wait for a large call to drain; a failure or
    an interruption drops the connection, as redis-py's own send does."""
    try:
        writer = conn._writer
        writer.writelines(chunks)
        if writer.transport.get_write_buffer_size():
            async with asyncio.timeout(conn.socket_timeout):
                await writer.drain()
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
