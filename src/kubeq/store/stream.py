"""Writing a bulk enqueue's script calls to Redis as each is ready (``Stream``), on the
connection the calling thread keeps (``scripts._Kept``), and reading every reply at the end.
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis
from redis.exceptions import NoScriptError, ResponseError

from kubeq.store.resend import resent
from kubeq.store.scripts import (
    ScriptCall,
    evalsha_command,
    kept_connection,
    pack_command,
    run_pipeline,
)


class Stream:
    """Script calls written to Redis as each is ready, their replies read at the end: a bulk
    enqueue's first batches run in Redis while the client lays out the rest.

    On a plain ``redis.Redis`` the calls go out on the connection this thread keeps
    (``_Kept``). Any connection trouble (or another kind of client) sends every call again at
    ``finish`` through ``run_pipeline``, and again while the connection fails
    (``resend.resent``); the scripts recognise a call sent again by its job ids and send
    token, so a batch that ran twice enqueues its jobs once. The
    calls Redis answered NOSCRIPT go through ``run_pipeline`` too, which loads the script."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[ScriptCall] = []
        self.conn: Any = None
        if type(client) is redis.Redis and client.connection is None:
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, OSError):
                self.conn = kept_connection(client.connection_pool)

    def script(self, call: ScriptCall) -> None:
        self.calls.append(call)
        if self.conn is None:
            return
        # redis-py's health check (a PING before a command, once ``health_check_interval``
        # passed since the last reply) would read an earlier call's unread reply as the
        # PING's: only the first call, with nothing unread, may check
        first = len(self.calls) == 1
        try:
            packed = pack_command(self.conn, evalsha_command(call))
            self.conn.send_packed_command(packed, check_health=first)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self._drop()
        except BaseException:
            self._drop()
            raise

    def finish(self) -> list[Any]:
        """Every call's reply, in order; a script error raises."""
        if self.conn is None:
            return self._again(self.calls)
        replies: list[Any] = []
        try:
            for _ in self.calls:
                try:
                    replies.append(self.conn.read_response())
                except ResponseError as exc:  # answered in full: the connection is clean
                    replies.append(exc)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self._drop()
            return self._again(self.calls)
        except BaseException:
            self._drop()  # interrupted mid-reply: never reuse it
            raise
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            again = self._again([self.calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _again(self, calls: list[ScriptCall]) -> list[Any]:
        """``calls`` sent again through ``run_pipeline`` (which loads a missing script), and
        again while the connection fails (``resend.resent``)."""
        return resent(lambda: run_pipeline(self.client, calls), "enqueue")

    def abandon(self) -> None:
        """The caller gives up before ``finish``: the unread replies make the connection
        unusable."""
        self._drop()

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.disconnect()
            self.conn = None
