"""The App of the redis tier's task modules (``qtasks`` and the modules it re-exports), and
the tasks' own Redis client, connected to ``KUBEQ_REDIS_URL`` on first use."""

from __future__ import annotations

import os

import redis

import kubeq

app = kubeq.App()
_r: redis.Redis | None = None


def r() -> redis.Redis:
    global _r
    if _r is None:
        _r = kubeq.store.connections.sync_client(os.environ["KUBEQ_REDIS_URL"])  # cluster too
    return _r
