"""What the layers below the App need of it, as Protocols.

A Job handle, the workflow edges and the hand-off read and write Redis through an App, but
must not import the App (it imports them). They take a ``Backend`` instead: ``kubeq.App`` is
one, and so is any object with the same attributes (a test double, another client).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import redis
    from redis.asyncio import Redis as AsyncRedis

    from kubeq.options import TaskOptions
    from kubeq.store.partitions import Partitioner
    from kubeq.store.scripts import Scripts


class Backend(Protocol):
    """An App as the store sees it: its key prefix, its clients, its partitioned queues and
    its task defaults."""

    @property
    def prefix(self) -> str:
        """The key prefix of every key (``keys.py``)."""
        ...

    @property
    def redis(self) -> redis.Redis:
        """The sync client."""
        ...

    @property
    def aredis(self) -> AsyncRedis:
        """The running event loop's asyncio client."""
        ...

    @property
    def scripts(self) -> Scripts:
        """The Lua scripts registered on the sync client."""
        ...

    @property
    def partitioner(self) -> Partitioner:
        """How the App spreads each queue's jobs over its partitions."""
        ...

    def defaults_for(self, name: str) -> TaskOptions:
        """The options of a registered task, or the defaults for one the App does not know."""
        ...
