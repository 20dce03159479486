"""The Lua scripts that make every state change of a job atomic, loaded once per client.

Each script lives in ``lua/<name>.lua`` and gets prepended what it uses of the shared parts
``lua/_prelude.lua`` (server time, score helpers, wake-ups), ``lua/_control.lua`` (limits,
leases, expiry, durable waits) and ``lua/_fair.lua`` (fair queues): ``luatext.join`` keeps
their top-level definitions the script names (Redis runs a script's whole text at every
call). Scripts are sent by SHA (EVALSHA) and loaded again when a restarted Redis has
forgotten them.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import threading
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.exceptions import NoScriptError, ResponseError

from kubeq.store.direct import run_direct
from kubeq.store.keys import fence_of
from kubeq.store.luatext import Statement, join, statements

_HIREDIS_PACK: Any
try:
    from hiredis import pack_command as _HIREDIS_PACK
except ImportError:  # hiredis is a dependency; a stripped install still runs
    _HIREDIS_PACK = None

NAMES = (
    "enqueue", "fetch", "ack", "heartbeat", "idle", "leave", "stats", "cancel", "purge", "dead",
    "abort", "progress", "depend", "resolve", "edge", "handed", "links", "step", "suspend",
    "signal", "fairstats", "flow", "batch", "batch_done", "schedule_upsert", "schedule_claim",
    "schedule_commit", "schedule_state", "abort_item", "pinned_bury",
)  # fmt: skip
"""Every script, by its file name in ``lua/`` (the ``_`` files are the shared parts)."""


PARTS = ("_prelude", "_control", "_fair")
"""The shared parts every script starts with, in order."""


@cache
def part(name: str) -> str:
    """The text of one file of ``lua/``: a script's own part or a shared one."""
    return resources.files(__package__).joinpath("lua").joinpath(f"{name}.lua").read_text()


@cache
def _shared() -> list[Statement]:
    """The top-level statements of the shared ``PARTS``, in order."""
    return [s for p in PARTS for s in statements(part(p))]


def source(name: str) -> str:
    """The full text of one script: what it uses of the shared ``PARTS``, then its own
    (``luatext.join``). Made anew at each call (only to load a script or take its SHA1): a
    process keeps the parts, not the joined texts."""
    return join(_shared(), part(name))


class Lua:
    """One script by name and SHA1, independent of any client: enough to send it by EVALSHA
    through a pipeline of any client (sync or asyncio). Its text is made again (``source``)
    only to load it, when Redis answers NOSCRIPT; a script given as text keeps it.

    The SHA1s of the scripts in ``LUA`` are taken together, the first time one is read
    (``_take_shas``): a process that never calls a script (``kubeq --help``, a tool) does
    not join their texts, and once they are taken the process lets go of the parts."""

    __slots__ = ("_sha", "_text", "name")

    def __init__(self, name: str, script: str | None = None) -> None:
        self.name = name
        self._text = script
        self._sha: str | None = _sha(script.encode()) if script is not None else None

    @property
    def sha(self) -> str:
        sha = self._sha
        if sha is None:
            _take_shas(self)
            sha = self._sha
            assert sha is not None
        return sha

    @property
    def script(self) -> str:
        return self._text if self._text is not None else source(self.name)

    def __repr__(self) -> str:
        return f"Lua({self.name!r}, sha={self.sha!r})"


def _sha(text: bytes) -> str:
    return hashlib.sha1(text).hexdigest()


_SHAS_LOCK = threading.Lock()


def _take_shas(first: Lua) -> None:
    """Take the SHA1 of ``source(name)`` for ``first`` and every script of ``LUA`` that has
    none yet, then drop the cut parts and the files' texts (about 0.3 MB a process): they
    are read again only to load a script after NOSCRIPT."""
    with _SHAS_LOCK:
        for lua in (first, *LUA.values()):
            if lua._sha is None:
                lua._sha = _sha(source(lua.name).encode())
        _shared.cache_clear()
        part.cache_clear()


LUA = {name: Lua(name) for name in NAMES}
"""Every script by name."""


def fenced(keys: list[Any]) -> list[Any]:
    """The keys of a script call with its queue's fence appended (``keys.fence_of``): how
    every call is sent, so no script runs on a queue whose slot is half-moved."""
    if not keys:
        return keys
    first = keys[0].decode() if isinstance(keys[0], bytes) else str(keys[0])
    return [*keys, fence_of(first)]


class _Fenced:
    """A script called on one client (sync or asyncio) as one ``run_pipeline`` call: its
    fence key appended, EVALSHA, and on NOSCRIPT the script loaded and sent again."""

    __slots__ = ("client", "lua")

    def __init__(self, client: Any, lua: Lua) -> None:
        self.client = client
        self.lua = lua

    @property
    def sha(self) -> str:
        return self.lua.sha

    @property
    def script(self) -> str:
        return self.lua.script

    def __call__(self, keys: list[Any], args: list[Any] | None = None, client: Any = None) -> Any:
        c = self.client if client is None else client
        call = (self.lua, keys, args or [])
        if inspect.iscoroutinefunction(c.execute_command):  # an asyncio client
            return self._awaited(c, call)
        return run_pipeline(c, [call])[0]

    @staticmethod
    async def _awaited(c: Any, call: ScriptCall) -> Any:
        return (await run_pipeline_async(c, [call]))[0]


class Scripts:
    """The scripts registered on one client (sync or asyncio); attribute per script. Called
    directly (``scripts.cancel(keys=..., args=...)``) they declare the queue's fence too."""

    enqueue: Any
    fetch: Any
    ack: Any
    heartbeat: Any
    idle: Any
    leave: Any
    stats: Any
    cancel: Any
    purge: Any
    dead: Any
    abort: Any
    progress: Any
    depend: Any
    resolve: Any
    edge: Any
    handed: Any
    links: Any
    step: Any
    suspend: Any
    signal: Any
    flow: Any
    batch: Any
    batch_done: Any
    schedule_upsert: Any
    schedule_claim: Any
    schedule_commit: Any
    schedule_state: Any

    def __init__(self, client: Any) -> None:
        for name in NAMES:
            setattr(self, name, _Fenced(client, LUA[name]))


ScriptCall = tuple[Any, list[Any], list[Any]]
"""One pipelined script call: (script with ``.sha`` and ``.script``, keys, args). The script
is a ``Lua`` or one registered on a client."""


def evalsha_command(call: ScriptCall) -> tuple[Any, ...]:
    """The EVALSHA command of one script call, its queue's fence declared."""
    script, keys, args = call
    declared = fenced(keys)
    return ("EVALSHA", script.sha, len(declared), *declared, *args)


def _queue(pipe: Any, calls: list[ScriptCall]) -> None:
    for call in calls:
        # execute_command, not pipe.evalsha: redis-py's cluster pipeline blocks the evalsha
        # method (for NOSCRIPT, which run_pipeline handles itself) but routes EVALSHA by its
        # keys, and every call's keys are one queue's slot
        pipe.execute_command(*evalsha_command(call))


ORDER_ERROR = "KUBEQORDER"
"""How fetch.lua refuses to run before an ack sent ahead of it in its pipeline has run."""


def _unrun(result: Any) -> bool:
    """A call that changed nothing and must be sent again: its script was not loaded
    (NOSCRIPT), or it refused to run ahead of an earlier call that was not."""
    return isinstance(result, NoScriptError) or (
        isinstance(result, ResponseError) and str(result).startswith(ORDER_ERROR)
    )


def _missing(calls: list[ScriptCall], results: list[Any], raise_errors: bool) -> list[int]:
    """The calls to send again, in their order: every one that did not run. Only those are
    resent, so a call that ran is never run twice; a call that must not run before an
    earlier one (a fetch after its acks) refuses itself (``ORDER_ERROR``) and goes again
    with it, in order."""
    if raise_errors:
        for result in results:
            if isinstance(result, Exception) and not _unrun(result):
                raise result
    return [i for i, r in enumerate(results) if _unrun(r)]


def pack_command(conn: Any, command: tuple[Any, ...]) -> Any:
    """The command in RESP, as the chunks ``send_packed_command`` takes: hiredis's C packer
    when installed (a default dependency), else the connection's own."""
    if _HIREDIS_PACK is not None:
        return [_HIREDIS_PACK(command)]
    return conn.pack_command(*command)


class _Kept:
    """The connection a thread keeps from the pool of the client it last enqueued with: the
    pool's checkout (a lock, a poll of the socket, redis-py's connection-count hooks) cost as
    much CPU as the rest of a one-call enqueue. One per thread; it goes back to its pool when
    the thread moves to another client, when the thread ends (its thread-local is dropped),
    and never crosses a fork."""

    __slots__ = ("conn", "pid", "pool")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.pid = _pid[0]
        self.conn: Any = None
        self.conn = pool.get_connection()  # raises when Redis cannot be reached

    def __del__(self) -> None:
        if self.conn is not None and self.pid == _pid[0]:
            with contextlib.suppress(Exception):
                self.pool.release(self.conn)


_kept = threading.local()
_pid = [os.getpid()]
"""This process's id, kept up to date at fork: os.getpid() is a system call on every enqueue."""
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def kept_connection(pool: Any) -> Any:
    kept: _Kept | None = getattr(_kept, "conn", None)
    pid = _pid[0]
    if kept is None or kept.pool is not pool or kept.pid != pid:
        if kept is not None and kept.pid != pid:
            kept.pid = -1  # the parent's: never released (nor used) here
        kept = _kept.conn = _Kept(pool)
    return kept.conn


def _evalsha(client: Any, sha: str, keys: list[Any], args: list[Any]) -> Any:
    """One EVALSHA, the hot path of a one-call enqueue. On a plain (or Sentinel-managed)
    ``redis.Redis`` it is written and read directly on the connection this thread keeps
    (``_Kept``): redis-py's command dispatch (retry wrapper, observability hooks, option
    filtering) and pool checkout cost more CPU than the script takes in Redis. Any
    connection trouble drops the connection and hands the call to ``client.evalsha``, so
    redis-py's retry policy still decides (as with redis-py's own retry, a call whose reply
    was lost may run twice: enqueue de-duplicates by job id). Errors Redis answers
    (NOSCRIPT, a script error) raise as from ``client.evalsha``."""
    if type(client) is not redis.Redis:  # a cluster client, a pipeline, a subclass
        return client.evalsha(sha, len(keys), *keys, *args)
    conn: Any = client.connection  # a single-connection client (client.client(), for WAIT)
    try:
        if conn is None:
            conn = kept_connection(client.connection_pool)
        conn.send_packed_command(pack_command(conn, ("EVALSHA", sha, len(keys), *keys, *args)))
        return conn.read_response()
    except redis.ResponseError:
        raise  # Redis answered in full: the connection is clean
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        if conn is not None:
            conn.disconnect()
    except BaseException:
        if conn is not None:
            conn.disconnect()  # interrupted mid-reply (KeyboardInterrupt...): never reuse it
        raise
    return client.evalsha(sha, len(keys), *keys, *args)


def run_pipeline(client: Any, calls: list[ScriptCall], raise_errors: bool = True) -> list[Any]:
    """Run script calls in ONE round trip (sync client).

    redis-py's own pipelined scripts ask SCRIPT EXISTS first, a second round trip every
    time; here a script is loaded only when Redis answers NOSCRIPT (after a restart), and
    only the calls that did not run are sent again. With ``raise_errors=False`` a call that
    failed leaves its exception in its place in the results, and the others stand.
    """
    if len(calls) == 1:  # one script call (e.g. one enqueue): no pipeline machinery
        script, keys, args = calls[0]
        keys = fenced(keys)
        try:
            try:
                return [_evalsha(client, script.sha, keys, args)]
            except NoScriptError:
                client.script_load(script.script)
                return [_evalsha(client, script.sha, keys, args)]
        except ResponseError as exc:  # a script error; outages raise as from a pipeline
            if raise_errors:
                raise
            return [exc]
    pipe = client.pipeline(transaction=False)
    _queue(pipe, calls)
    results: list[Any] = pipe.execute(raise_on_error=False)
    missing = _missing(calls, results, raise_errors)
    if missing:
        for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
            client.script_load(script.script)
        retry = [calls[i] for i in missing]
        pipe = client.pipeline(transaction=False)
        _queue(pipe, retry)
        for i, result in zip(missing, pipe.execute(raise_on_error=raise_errors), strict=True):
            results[i] = result
    return results


async def run_pipeline_async(
    client: Any, calls: list[ScriptCall], raise_errors: bool = True
) -> list[Any]:
    """``run_pipeline`` for a redis.asyncio client. A plain client's calls are written before
    the first await (``direct.run_direct``): redis-py's own path yields to the event loop
    before it writes."""
    results = await run_direct(client, [evalsha_command(call) for call in calls])
    if results is None:
        results = await _pool_pipeline(client, calls, raise_errors)
    missing = _missing(calls, results, raise_errors)
    if missing:
        for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
            await client.script_load(script.script)
        retry = [calls[i] for i in missing]
        pipe = client.pipeline(transaction=False)
        _queue(pipe, retry)
        retried = await pipe.execute(raise_on_error=raise_errors)
        for i, result in zip(missing, retried, strict=True):
            results[i] = result
    return results


async def _pool_pipeline(client: Any, calls: list[ScriptCall], raise_errors: bool) -> list[Any]:
    """The calls through redis-py's own dispatch: one pipeline, or one EVALSHA alone."""
    if len(calls) == 1:  # one script call (e.g. one adelay): no pipeline machinery
        script, keys, args = calls[0]
        keys = fenced(keys)
        try:
            return [await client.evalsha(script.sha, len(keys), *keys, *args)]
        except ResponseError as exc:  # NOSCRIPT or a script error: in its place
            if raise_errors and not _unrun(exc):
                raise
            return [exc]
    pipe = client.pipeline(transaction=False)
    _queue(pipe, calls)
    results: list[Any] = await pipe.execute(raise_on_error=False)
    return results
