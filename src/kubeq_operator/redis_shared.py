"""One Redis client, and one stats round trip, for every TaskQueue on the same Redis.

TaskQueues that name the same ``spec.redis.url`` with the same password share one
:class:`Shared` (a client and its :class:`StatsBatch`), counted by users: the last
``release`` closes the client. A client that failed is ``discard``-ed: the next ``acquire``
builds a new one, and the old one closes when its last user lets it go.

:class:`StatsBatch` turns the reads of many TaskQueues into one pipeline: a read joins the
batch being gathered; the batch is sent once the event loop has run everything ready (the
loops of one poll tick, which ``handlers`` aligns to the same instants, within
``BATCH_WINDOW``); reads that arrive
while it is in flight make the next batch. A script error (one queue's keys of the wrong
type) fails only the reads it concerns: the batch is then re-read one TaskQueue at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio
from redis.exceptions import RedisError, ResponseError

from kubeq.store import connections
from kubeq.store.stats import QueueStats, read_stats_async

log = logging.getLogger("kubeq_operator")

BATCH_WINDOW = 0.01
"""A batch waits this long for the other reads of its poll tick before it is sent."""

Key = tuple[str, str | None]
"""``(url, password)``."""


class StatsBatch:
    """Reads of many TaskQueues' queues, sent together on one client."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.pending: list[tuple[str, tuple[str, ...], asyncio.Future[list[QueueStats]]]] = []
        self._task: asyncio.Task[None] | None = None
        self.round_trips = 0
        """Batches sent (one pipeline per prefix each)."""

    async def read(self, queues: Sequence[str], prefix: str) -> list[QueueStats]:
        """The stats of ``queues`` (in their order), read along with the other waiting reads."""
        fut: asyncio.Future[list[QueueStats]] = asyncio.get_running_loop().create_future()
        self.pending.append((prefix, tuple(queues), fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send())
        return await fut

    async def _send(self) -> None:
        await asyncio.sleep(BATCH_WINDOW)  # let the other loops of this tick join
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                by_key = await self._read_all(batch)
            except ResponseError:
                await self._one_by_one(batch)
                continue
            except (RedisError, OSError) as e:
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            except BaseException as e:  # cancelled with the client: nobody waits forever
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(RedisError(f"stats batch stopped: {e!r}"))
                raise
            for prefix, queues, fut in batch:
                if not fut.done():
                    fut.set_result([by_key[(prefix, q)] for q in queues])

    async def _read_all(
        self, batch: list[tuple[str, tuple[str, ...], asyncio.Future[list[QueueStats]]]]
    ) -> dict[tuple[str, str], QueueStats]:
        wanted: dict[str, dict[str, None]] = {}
        for prefix, queues, fut in batch:
            if not fut.done():
                wanted.setdefault(prefix, {}).update(dict.fromkeys(queues))
        prefixes = list(wanted)
        self.round_trips += 1
        results = await asyncio.gather(*(self._read(list(wanted[p]), p) for p in prefixes))
        by_key: dict[tuple[str, str], QueueStats] = {}
        for p, stats in zip(prefixes, results, strict=True):
            if isinstance(stats, BaseException):
                raise stats
            by_key.update(((p, s.queue), s) for s in stats)
        return by_key

    async def _read(self, queues: list[str], prefix: str) -> list[QueueStats] | BaseException:
        """One prefix's read, its error returned: a task that gather leaves running when
        another fails must not end in an error (kopf re-raises, at shutdown, the error of
        every task still running when the operator stops: it would exit 1)."""
        try:
            return await read_stats_async(self.client, queues, prefix)
        except (RedisError, OSError) as e:
            return e

    async def _one_by_one(
        self, batch: list[tuple[str, tuple[str, ...], asyncio.Future[list[QueueStats]]]]
    ) -> None:
        for prefix, queues, fut in batch:
            if fut.done():
                continue
            self.round_trips += 1
            stats = await self._read(list(queues), prefix)
            if isinstance(stats, BaseException):
                fut.set_exception(stats)
            else:
                fut.set_result(stats)


class Shared:
    """A client shared by the TaskQueues of one Redis, and its stats batch."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self.client = connections.async_client(key[0], password=key[1], socket_timeout=5.0)
        self.batch = StatsBatch(self.client)
        self.users = 0
        self.discarded = False

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except (RedisError, OSError) as e:  # closing a broken connection may fail
            log.debug("closing the Redis client: %s", e)


class SharedClients:
    """The operator's clients, one per (URL, password) in use."""

    def __init__(self) -> None:
        self._current: dict[Key, Shared] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def acquire(self, url: str, password: str | None) -> Shared:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a client belongs to one event loop
            self._current, self._loop = {}, loop
        key = (url, password)
        shared = self._current.get(key)
        if shared is None:
            shared = self._current[key] = Shared(key)
        shared.users += 1
        return shared

    def discard(self, shared: Shared) -> None:
        """Stop handing out ``shared`` (it failed): the next ``acquire`` builds a new one."""
        shared.discarded = True
        if self._current.get(shared.key) is shared:
            del self._current[shared.key]

    async def release(self, shared: Shared) -> None:
        shared.users -= 1
        if shared.users <= 0:
            if self._current.get(shared.key) is shared:
                del self._current[shared.key]
            await shared.close()

    def __len__(self) -> int:
        return len(self._current)


CLIENTS = SharedClients()
"""The operator's one registry (a RedisSource may be given another, e.g. in a test)."""
