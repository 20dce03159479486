"""Sending an enqueue plan (``enqueue.plan_enqueue``) to Redis.

``send`` (a sync redis-py client) and ``send_async`` (an asyncio one) register new queue
names in ``kubeq:queues`` and send every script call in one pipeline, optionally waiting for
replicas (Redis WAIT). ``EnqueueStream`` writes a bulk enqueue while it is still being laid
out (``stream.Stream``). Each returns the replies of the plan's calls, in their order
(``enqueue.created_flags`` reads which jobs each call enqueued). A call is sent again as it
was (the same send token) when its reply is lost, and again while the connection fails
(``store.resend``), so the replies are the first send's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubeq import defaults
from kubeq.client.enqueue import EnqueuePlan
from kubeq.errors import NotReplicated
from kubeq.store import cluster as rediscluster
from kubeq.store.keys import queues_key
from kubeq.store.resend import aresent, resent
from kubeq.store.scripts import ScriptCall, run_pipeline, run_pipeline_async
from kubeq.store.stream import Stream


def send(
    client: Any,
    plan: EnqueuePlan,
    known_queues: set[str] | None = None,
    wait_replicas: int = 0,
    wait_timeout: float = defaults.WAIT_TIMEOUT,
) -> list[Any]:
    """Send a plan with a sync client; returns the replies of its calls. ``known_queues``
    (kept by the caller) skips registering queues already registered by this process.
    ``wait_replicas`` > 0 returns only once that many replicas have the jobs (Redis WAIT),
    else raises NotReplicated."""
    if wait_replicas > 0 and rediscluster.is_cluster(client):
        new = _new_queues(plan.queues, known_queues)
        if new:
            client.sadd(queues_key(plan.prefix), *new)
        acked, replies = rediscluster.run_waited(
            client, list(plan.calls), wait_replicas, int(wait_timeout * 1000)
        )
        _check_replicated(acked, wait_replicas)
        return replies
    if wait_replicas > 0:
        # WAIT counts the writes of its own connection: the jobs and the WAIT share one (a
        # pooled client could send the WAIT on a connection whose writes replicated long ago)
        with client.client() as one:
            replies = send(one, plan, known_queues)
            acked = one.wait(wait_replicas, int(wait_timeout * 1000))
        _check_replicated(acked, wait_replicas)
        return replies
    new = _new_queues(plan.queues, known_queues)

    def once() -> list[Any]:
        if new:
            client.sadd(queues_key(plan.prefix), *new)
        return run_pipeline(client, list(plan.calls))

    replies = resent(once, "enqueue")
    if known_queues is not None:
        known_queues.update(new)
    return replies


async def send_async(
    client: Any,
    plan: EnqueuePlan,
    known_queues: set[str] | None = None,
    wait_replicas: int = 0,
    wait_timeout: float = defaults.WAIT_TIMEOUT,
) -> list[Any]:
    """``send`` for a redis.asyncio client (concurrent calls on one loop are the common case,
    so a WAIT on a shared pool would often land on another call's connection). On Redis
    Cluster with ``wait_replicas``, ``App.aenqueue_many`` sends through ``send`` in a thread
    (redis-py's asyncio cluster client cannot pin one node's connection)."""
    if wait_replicas > 0 and rediscluster.is_cluster(client):
        raise ValueError(
            "wait_replicas on Redis Cluster: enqueue through kubeq.App (it sends these "
            "with the sync cluster client), or with send()"
        )
    if wait_replicas > 0:
        async with client.client() as one:
            replies = await send_async(one, plan, known_queues)
            acked = await one.wait(wait_replicas, int(wait_timeout * 1000))
        _check_replicated(acked, wait_replicas)
        return replies
    new = _new_queues(plan.queues, known_queues)

    async def once() -> list[Any]:
        if new:
            await client.sadd(queues_key(plan.prefix), *new)
        return await run_pipeline_async(client, list(plan.calls))

    replies = await aresent(once, "enqueue")
    if known_queues is not None:
        known_queues.update(new)
    return replies


class EnqueueStream:
    """A ``PlanSink`` that writes a bulk enqueue to Redis while it is laid out: the new
    queues are registered first (as ``send`` does), then each batch goes out as the plan
    hands it over, and ``finish`` reads the replies (``stream.Stream``). Only for a plain
    ``redis.Redis`` client with no replicas to wait for."""

    def __init__(self, client: Any, prefix: str, known_queues: set[str] | None) -> None:
        self.client = client
        self.stream = Stream(client)
        self.prefix = prefix
        self.known = known_queues

    def queues(self, names: tuple[str, ...]) -> None:
        new = _new_queues(names, self.known)
        if new:
            self.client.sadd(queues_key(self.prefix), *new)
        if self.known is not None:
            self.known.update(new)

    def script(self, call: ScriptCall) -> None:
        self.stream.script(call)

    def finish(self, plan: EnqueuePlan) -> list[Any]:
        """Wait for every batch's reply (a script error raises); the replies of
        ``plan.calls``, in their order (the stream got them in the order they filled)."""
        replies = self.stream.finish()
        by_args = {
            id(args): reply for (_, _, args), reply in zip(self.stream.calls, replies, strict=True)
        }
        return [by_args[id(args)] for _, _, args in plan.calls]

    def abandon(self) -> None:
        self.stream.abandon()


def _check_replicated(acked: int, wanted: int) -> None:
    if int(acked) < wanted:
        raise NotReplicated(
            f"enqueued on the master, but only {acked} of {wanted} replicas confirmed it in "
            "time: the jobs are lost if the master fails before they replicate (check the "
            "replicas, or raise wait_timeout)"
        )


def _new_queues(queues: Iterable[str], known: set[str] | None) -> list[str]:
    return [q for q in queues if known is None or q not in known]
