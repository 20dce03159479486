"""The asyncio client's command packer (``connections.hiredis_packing``): for every kind of
argument it sends the bytes redis-py's own hiredis packer sends, and refuses what that refuses
(with the same error), whichever redis-py release is installed."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection
from redis.connection import HiredisRespSerializer
from redis.exceptions import DataError

from kubeq.store.connections import async_client

COMMANDS: list[tuple[Any, ...]] = [
    ("EVALSHA", "a" * 40, 2, b"kubeq:{q}:ready", "kubeq:{q}:fence", "x", 1, 2.5, -7),
    ("SET", "k\u00e9y", "v\u00e4lue \r\n with spaces"),
    ("SCRIPT LOAD", "return 1"),  # two words: split into SCRIPT and LOAD
    ("CLIENT SETNAME", b"kubeq-worker"),
    ("HSET", "h", "payload", bytearray(b"raw"), "more", memoryview(b"view")),
    ("RPUSH", "big", b"x" * 100_000),
    (b"PING",),
]


def _packer() -> Connection:
    client = async_client("redis://127.0.0.1:1/0")
    conn = client.connection_pool.connection_class()
    assert type(conn).__name__.startswith("Hiredis"), "the hiredis packer is not in use"
    return conn  # type: ignore[no-any-return]


def _outcome(pack: Any, command: tuple[Any, ...]) -> Any:
    try:
        return b"".join(bytes(c) for c in pack(*command))
    except DataError as exc:
        return ("DataError", str(exc))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_packed_bytes_are_redis_pys_own(command: tuple[Any, ...]) -> None:
    own = HiredisRespSerializer().pack  # type: ignore[no-untyped-call, unused-ignore]
    assert _outcome(_packer().pack_command, command) == _outcome(own, command)


def test_an_argument_redis_py_refuses_is_refused() -> None:
    with pytest.raises(DataError):
        _packer().pack_command("SET", "k", None)
    with pytest.raises(DataError):
        _packer().pack_command("SET", "k", {"a": 1})
