"""The gateway closes the Redis clients of a TaskQueue that went away (deleted, or its
spec.redis changed), and all of them when it shuts down (its ASGI lifespan ends, while the
process and its event loop still run): counted as the TCP connections the gateway process
holds to each Redis."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from kubeq.gateway.app import Gateway, Limits, create_app
from kubeq.gateway.kube import Kube, Target
from kubeq.options import Call
from kubeq.testing.server import RedisServer
from tests.gateway.conftest import World
from tests.gateway.gwsupport import connections_to

ADD = {"task": "qtasks.add", "args": [1, 2]}


def _until(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_redis_clients_are_closed_when_a_taskqueue_goes_away(world: World, tmp_path: Path) -> None:
    gw, alice = world.gateway, world.token("alice")  # TaskQueues cached 1 s
    first, second = RedisServer(tmp_path / "first"), RedisServer(tmp_path / "second")
    first.start()
    second.start()
    try:
        pid = gw.proc.pid
        world.apply(world.taskqueue("tq-gone", first.url))
        world.apply(world.taskqueue("tq-moved", first.url))
        for name in ("tq-gone", "tq-moved"):
            status, body = gw.call("POST", world.jobs(name), ADD, alice)
            assert status == 201, body
        assert connections_to(pid, first.port) >= 2

        world.kubectl("delete", "taskqueue", "tq-gone", "-n", world.namespace, check=True)
        world.apply(world.taskqueue("tq-moved", second.url))  # its Redis changed

        def refreshed() -> bool:
            gone = gw.call("GET", world.jobs("tq-gone") + "/x", token=alice)
            moved = gw.call("POST", world.jobs("tq-moved"), ADD, alice)
            return (
                gone[0] == 404
                and "no TaskQueue" in gone[1]["error"]
                and moved[0] == 201
                and (connections_to(pid, second.port) > 0)
            )

        _until(refreshed, "the gateway to see both changes")
        assert connections_to(pid, first.port) == 0
        assert connections_to(pid, second.port) >= 1
    finally:
        first.stop()
        second.stop()


def test_shutdown_closes_every_redis_client(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()

    async def scenario() -> tuple[int, int]:
        gateway = Gateway(cast(Kube, None), Limits())  # no request reaches the API server
        asgi = create_app(gateway)
        async with asgi.router.lifespan_context(asgi):
            for name in ("tq-1", "tq-2"):
                target = Target(server.url, None, "kubeq", ("q",), 0)
                app = await gateway.app_for(("ns", name), target)
                await app.aenqueue_many([Call("tasks.any")])
            during = connections_to(os.getpid(), server.port)
        return during, connections_to(os.getpid(), server.port)

    try:
        during, after = asyncio.run(scenario())
    finally:
        server.stop()
    assert during >= 2
    assert after == 0
