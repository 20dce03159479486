"""Where the operator reads a TaskQueue's queues: its Redis client, its password, its numbers.

One ``RedisSource`` per TaskQueue holds that TaskQueue's share of a client
(``redis_shared``: TaskQueues on the same Redis with the same password share one client, and
their stats reads go out together in one pipeline per poll tick). The stats read, the
schedules' bookkeeping and their enqueues (``kubeq.client.enqueue``'s plan, sent with
``send_async``) all use it. It re-reads the password from the Secret named by
``spec.redis.secretRef`` every ``SECRET_REFRESH`` seconds and after each failure (a rotated
password heals by itself), and moves to another shared client when the URL or the password
changes. A failed read raises :class:`RedisDown` whose ``reason`` and ``message`` become the
RedisReachable condition; the message names the field to fix and never carries a password.
Kubernetes is reached only through the ``read_secret`` function it is given.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import redis.asyncio
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from kubeq.client.enqueue import plan_enqueue
from kubeq.client.send import send_async
from kubeq.options import Call, TaskOptions
from kubeq.store import partitions, urls
from kubeq.store.fairness import sync_weights_async
from kubeq.store.keys import QueueKeys
from kubeq.store.partitions import Partitioner
from kubeq.store.stats import QueueStats
from kubeq_operator.redis_shared import CLIENTS, Shared, SharedClients
from kubeq_operator.spec import TaskQueueSpec
from kubeq_operator.status import Reason

SECRET_REFRESH = 30.0
"""A Secret's password is re-read this often (and after each Redis error)."""
READ_TIMEOUT_FLOOR = 5.0
"""A read may take this long at least (longer when the poll interval is longer)."""

ReadSecret = Callable[[str, str, str], Awaitable[str | None]]
"""``(namespace, secret name, key) -> the decoded value, or None if either is missing``."""

log = logging.getLogger("kubeq_operator")


class RedisDown(Exception):
    """The queues could not be read; ``reason`` is the condition's reason (CamelCase)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RedisSource:
    """The Redis of one TaskQueue (lives as long as its loop)."""

    def __init__(
        self, namespace: str, read_secret: ReadSecret, clients: SharedClients = CLIENTS
    ) -> None:
        self.namespace = namespace
        self.read_secret = read_secret
        self.clients = clients
        self.failures = 0
        """Failed reads in a row (0: the last read succeeded, or none happened yet)."""
        self._shared: Shared | None = None
        self._password: str | None = None
        self._password_at = -1e9

    async def client(self, spec: TaskQueueSpec) -> redis.asyncio.Redis:
        """The client for ``spec.redis`` (the password read from its Secret when due)."""
        return (await self._share(spec)).client

    async def _share(self, spec: TaskQueueSpec) -> Shared:
        ref = spec.redis.secret_ref
        now = time.monotonic()
        if ref is None:
            self._password = None
        elif now - self._password_at > SECRET_REFRESH or self.failures:
            value = await self.read_secret(self.namespace, ref.name, ref.key)
            if value is None:
                raise RedisDown(
                    Reason.SECRET_NOT_FOUND,
                    f"spec.redis.secretRef: Secret {self.namespace}/{ref.name} or its key "
                    f"{ref.key!r} does not exist; create it (kubectl -n {self.namespace} create "
                    f"secret generic {ref.name} --from-literal={ref.key}=PASSWORD) or fix "
                    "spec.redis.secretRef",
                )
            self._password, self._password_at = value, now
        key = (spec.redis.url, self._password)
        if self._shared is None or self._shared.key != key or self._shared.discarded:
            await self.close()
            self._shared = self.clients.acquire(*key)
        return self._shared

    async def read(self, spec: TaskQueueSpec) -> list[QueueStats]:
        """Every queue's numbers (one round trip, shared with the other TaskQueues reading this
        Redis in the same tick); raises RedisDown (and counts a failure)."""
        url = urls.redact(spec.redis.url)
        try:
            shared = await self._share(spec)
            # a timeout scope, not wait_for: no task of its own per read
            async with asyncio.timeout(max(READ_TIMEOUT_FLOOR, spec.scaling.poll_seconds)):
                stats = await shared.batch.read(spec.physical_queues, spec.redis.prefix)
        except RedisDown:
            self.failures += 1
            raise
        except (RedisError, RedisClusterException, OSError, TimeoutError) as e:
            self.failures += 1
            if self._shared is not None and not isinstance(e, ResponseError):
                self.clients.discard(self._shared)  # the next read makes a new connection
            await self.close()
            detail = str(e) or type(e).__name__
            raise RedisDown(
                Reason.REDIS_UNREACHABLE,
                f"cannot read the queues at spec.redis.url={url}: {detail}; holding the "
                "replicas. Check that Redis runs and that spec.redis.url (and secretRef for a "
                "password, rediss:// for TLS) are right",
            ) from e
        self.failures = 0
        return stats

    async def read_queues(self, spec: TaskQueueSpec, queues: list[str]) -> list[QueueStats]:
        """The numbers of ``queues`` (a worker pool's) on this Redis, in the same shared
        round trip; errors are raised as they come and not counted (``read`` reports Redis
        trouble for the TaskQueue)."""
        shared = await self._share(spec)
        async with asyncio.timeout(max(READ_TIMEOUT_FLOOR, spec.scaling.poll_seconds)):
            return await shared.batch.read(queues, spec.redis.prefix)

    async def enqueue(self, spec: TaskQueueSpec, calls: list[Call]) -> list[str]:
        """Enqueue ``calls`` on this TaskQueue's Redis with the same client; their job ids.

        The operator registers no tasks: a call without a queue goes to the TaskQueue's first
        queue, and every other option is the library's default unless the call sets it.
        """
        client = await self.client(spec)
        plan = plan_enqueue(
            calls,
            prefix=spec.redis.prefix,
            defaults_for=lambda _task: TaskOptions(queue=spec.queues[0]),
            route=Partitioner(dict.fromkeys(spec.queues, spec.partitions)).route,
        )
        await send_async(client, plan)
        return plan.job_ids

    async def sync_rate_limits(
        self, spec: TaskQueueSpec, owner: str, *, weights: bool = True
    ) -> list[str]:
        """Make each queue's rate limit in Redis what ``spec.rateLimits`` says (two pipelined
        round trips, the second only when something changes). A limit this TaskQueue set
        that the spec no longer names is removed; one set by ``kubeq limit`` is left alone.
        With ``weights``, the fairness weights of the queues ``spec.fairness`` names too.
        Returns what changed, for an Event."""
        client = await self.client(spec)
        # a partitioned queue's limit holds per partition (docs/redis.md, Partitions)
        queues = spec.physical_queues
        keys = [QueueKeys.of(q, spec.redis.prefix).rate_limit for q in queues]
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, ["n", "ms", "b", "by"])
            current = await pipe.execute()
        wanted = dict(spec.rate_limits)
        changes: list[str] = []
        async with client.pipeline(transaction=False) as pipe:
            for queue, key, now in zip(queues, keys, current, strict=True):
                rl = wanted.get(partitions.parent(queue))
                if rl is not None:
                    fields: dict[str, str | int] = {
                        "n": rl.count,
                        "ms": rl.period_ms,
                        "b": rl.burst,
                        "by": owner,
                    }
                    if now != [str(v).encode() for v in fields.values()]:
                        pipe.delete(key)
                        pipe.hset(key, items=[x for kv in fields.items() for x in kv])
                        changes.append(f"{queue}: at most {rl}")
                elif now[3] == owner.encode():
                    pipe.delete(key)
                    changes.append(f"{queue}: no rate limit")
            if changes:
                await pipe.execute()
        if not weights:
            return changes
        # spec.fairness: the weights of the queues it names (on each partition)
        wanted_weights = {
            p: dict(w) for q, w in spec.fairness for p in partitions.names(q, spec.partitions)
        }
        return changes + await sync_weights_async(client, wanted_weights, spec.redis.prefix)

    async def close(self) -> None:
        """Let go of the shared client (the last user closes it)."""
        shared, self._shared = self._shared, None
        if shared is not None:
            await self.clients.release(shared)
