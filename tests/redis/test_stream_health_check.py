"""A bulk enqueue streamed slower than the connection's health check keeps its replies.

``stream.Stream`` writes each batch's script call as it is laid out and reads every reply
at the end. redis-py pings a connection before a command when ``health_check_interval``
seconds passed since its last reply; on a connection with replies still unread, that PING
would read the first batch's reply as its own (a NOSCRIPT answer then raised out of the
enqueue, a result dropped the connection the calls had run on). Real redis-server, a
client with a 1 s health check, batches 1.5 s apart.
"""

from __future__ import annotations

import time

import pytest
import redis

from kubeq.store.scripts import Lua
from kubeq.store.stream import Stream

ECHO = Lua("echo", "redis.call('INCR', KEYS[1]) return ARGV[1]")
"""Counts its runs in its key and answers its argument."""


@pytest.mark.parametrize("loaded", [True, False], ids=["script loaded", "script not loaded"])
def test_replies_stay_in_order_when_a_health_check_falls_between_batches(
    redis_url: str, loaded: bool
) -> None:
    client = redis.Redis.from_url(redis_url, health_check_interval=1, socket_timeout=10)
    try:
        client.script_flush()
        if loaded:
            client.script_load(ECHO.script)
        stream = Stream(client)
        for i in range(3):
            stream.script((ECHO, [b"{q}:runs"], [f"batch {i}"]))
            time.sleep(1.5)  # longer than the health check interval, replies unread
        assert stream.finish() == [b"batch 0", b"batch 1", b"batch 2"]
        assert int(client.get(b"{q}:runs") or 0) == 3, "each batch ran once"
        assert client.ping()
    finally:
        client.close()
