"""Redis Cluster: the ``redis+cluster://`` URL, its clients, and the slot arithmetic kubeq needs.

``redis+cluster://node-a:6379,node-b:6379`` (``rediss+cluster://`` for TLS) names any nodes
of the cluster as seeds; redis-py's ``RedisCluster`` (sync and asyncio) learns the slot map
from them, routes each command by its key's slot, follows MOVED and ASK during a reshard and
finds a promoted replica after a failover. The password comes as for a single Redis
(``KUBEQ_REDIS_PASSWORD``, or the URL's user part). A cluster has no databases: a ``/<db>``
other than 0 is refused.

Every key of a queue carries the hash tag ``{queue}`` (``keys.py``), so each queue lives in
one slot and every script touches one slot. What spans queues is split by slot here
(``slot_groups``): the worker's fetch and its wake-up wait (``fetchrouter``) send one call per
group instead of one over all queues, and pipelines of per-queue calls (stats, heartbeats,
acks) are sent by redis-py's cluster pipeline as one round trip per node.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.crc import key_slot

from kubeq.store.scripts import run_pipeline
from kubeq.store.urls import ClusterTarget


def _cluster_options(target: ClusterTarget, base: dict[str, Any]) -> dict[str, Any]:
    """The single-Redis options (``connections._options``) a cluster client accepts, plus the
    URL's own. Kept to the arguments both redis-py cluster clients take."""
    allowed = {
        "socket_connect_timeout",
        "socket_timeout",
        "health_check_interval",
        "password",
        "username",
        "ssl",
        "ssl_ca_certs",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_cert_reqs",
        "client_name",
        "max_connections",
        "decode_responses",
    }
    options = {k: v for k, v in base.items() if k in allowed}
    if target.username:
        options.setdefault("username", target.username)
    if target.password and not os.environ.get("KUBEQ_REDIS_PASSWORD"):
        options.setdefault("password", target.password)
    if target.ssl:
        options["ssl"] = True
    for key, value in target.options.items():  # e.g. ssl_ca_certs=/path
        if key in allowed:
            options.setdefault(key, value)
    return options


def sync_cluster(target: ClusterTarget, base: dict[str, Any]) -> redis.cluster.RedisCluster:
    """redis-py's RedisCluster for the parsed URL (bytes responses)."""
    # annotated: redis-py before 6.4 types the constructed client as Any
    client: redis.cluster.RedisCluster = redis.cluster.RedisCluster(
        startup_nodes=[
            redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
            for h, p in target.nodes
        ],
        require_full_coverage=False,  # queues on healthy masters go on during a failover
        **_cluster_options(target, base),
    )
    return client


def async_cluster(
    target: ClusterTarget, base: dict[str, Any]
) -> redis.asyncio.cluster.RedisCluster:
    """redis-py's asyncio RedisCluster for the parsed URL (bytes responses)."""
    client: redis.asyncio.cluster.RedisCluster = redis.asyncio.cluster.RedisCluster(
        startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.nodes],
        require_full_coverage=False,
        **_cluster_options(target, base),
    )
    return client


def is_cluster(client: Any) -> bool:
    """True for a redis-py cluster client (sync or asyncio)."""
    return isinstance(client, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster)


def slot_of(key: str) -> int:
    """The hash slot of a key (its ``{tag}`` when it has one), as Redis computes it."""
    return int(key_slot(key.encode()))


def slot_groups(keys: Sequence[str]) -> list[list[int]]:
    """Indices of ``keys`` grouped by hash slot, groups in the order of their first key and
    indices in their given order: one group per slot a multi-queue call must be split into."""
    groups: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(slot_of(key), []).append(i)
    return list(groups.values())


OUTAGES: tuple[type[BaseException], ...] = (
    redis.exceptions.TryAgainError,
    redis.exceptions.AskError,  # and MovedError
    redis.exceptions.ClusterError,  # ClusterDownError, MasterDownError, "TTL exhausted"
    redis.exceptions.RedisClusterException,  # SlotNotCoveredError: not even a RedisError
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)
"""What a cluster answers while it moves a slot or fails a master over. Some are
``ResponseError``s, but they are outages to wait out, not a script's refusal: a call that met
one is sent again (an ack is fenced and idempotent)."""


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` says Redis (or a cluster node) is unreachable or moving, so the call
    should be sent again later; False for a script's own error, which would fail again."""
    return isinstance(exc, OUTAGES)


def run_waited(
    client: Any, calls: Sequence[Any], replicas: int, timeout_ms: int
) -> tuple[int, list[Any]]:
    """Run script calls on a cluster so that each master's share is followed by a WAIT on the
    same connection (WAIT counts the writes of its own connection); returns the fewest
    replicas any of those masters confirmed, and the calls' replies in their order. One round
    trip per master, one after another: the price of ``wait_replicas`` on a cluster."""
    by_node: dict[str, tuple[Any, list[int]]] = {}
    for i, call in enumerate(calls):
        node = client.get_node_from_key(call[1][0])
        by_node.setdefault(node.name, (node, []))[1].append(i)
    acked: list[int] = []
    replies: list[Any] = [None] * len(calls)
    for node, indices in by_node.values():
        with client.get_redis_connection(node).client() as one:
            got = run_pipeline(one, [calls[i] for i in indices])
            acked.append(int(one.wait(replicas, timeout_ms)))
        for i, reply in zip(indices, got, strict=True):
            replies[i] = reply
    return min(acked, default=replicas), replies
