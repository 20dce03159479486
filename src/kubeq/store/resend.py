"""Sending an enqueue's script calls again when the connection fails before their replies.

An enqueue's calls (``enqueue.lua``, ``flow.lua``, ``batch.lua``) are recognised on a new
send by their job ids and send tokens: a call that ran before its reply was lost answers as
it did the first time, and runs nothing twice. So where the connection fails, the calls are
sent again, as they were, after a short growing delay (``defaults.RESEND_DELAYS``), until one
send gets every reply or the delays run out; then the last error is the caller's. A refused
password or permission is never retried.

redis-py's own retry policy does not cover this: a client made from a URL retries nothing,
and a connection that fails again on the first new send (a proxy or a failover that drops
every connection for a moment) would fail the whole enqueue.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis
from redis.exceptions import AuthenticationError, AuthorizationError

from kubeq import defaults

log = logging.getLogger(__name__)

T = TypeVar("T")

NETWORK = (redis.ConnectionError, redis.TimeoutError, OSError)
"""What a failed connection raises (its reply may be lost: the call may have run)."""
REFUSED = (AuthenticationError, AuthorizationError)
"""Connection errors no new send can mend."""


def _delay(attempt: int, exc: BaseException, what: str) -> float | None:
    """Seconds to wait before send ``attempt + 1`` after ``exc``, or None: raise it."""
    if isinstance(exc, REFUSED) or attempt >= len(defaults.RESEND_DELAYS):
        return None
    delay = defaults.RESEND_DELAYS[attempt] * random.uniform(0.5, 2.0)
    log.warning(
        "%s: the connection failed before the replies (%s: %s); sending the same calls "
        "again in %.2f s (send %d of %d; they run once)",
        what,
        type(exc).__name__,
        exc,
        delay,
        attempt + 2,
        len(defaults.RESEND_DELAYS) + 1,
    )
    return delay


def resent(send: Callable[[], T], what: str) -> T:
    """``send()``, sent again while its connection fails (sync)."""
    attempt = 0
    while True:
        try:
            return send()
        except NETWORK as exc:
            delay = _delay(attempt, exc, what)
            if delay is None:
                raise
        time.sleep(delay)
        attempt += 1


async def aresent(send: Callable[[], Awaitable[T]], what: str) -> T:
    """``resent`` for a coroutine: ``await send()``, sent again while its connection fails."""
    attempt = 0
    while True:
        try:
            return await send()
        except NETWORK as exc:
            delay = _delay(attempt, exc, what)
            if delay is None:
                raise
        await asyncio.sleep(delay)
        attempt += 1
