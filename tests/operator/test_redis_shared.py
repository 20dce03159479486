"""TaskQueues on one Redis share one client and one stats round trip per poll tick, against
a real redis-server: what Redis sees (its connections and the reads it processed), what each
TaskQueue reads, and that one TaskQueue's broken keys fail only its own read."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import redis
from redis.exceptions import RedisError

import kubeq
from kubeq.store import connections
from kubeq.store.keys import QueueKeys
from kubeq_operator.redis_shared import SharedClients, StatsBatch
from kubeq_operator.redis_source import RedisDown, RedisSource
from kubeq_operator.ticker import on_grid
from tests.operator.test_redis_source import Secrets, tq_spec

pytestmark = pytest.mark.redis

COUNT = 50


def reads_and_clients(r: redis.Redis) -> tuple[int, int]:
    stats: Any = r.info("stats")
    clients: Any = r.info("clients")
    return int(stats["total_reads_processed"]), int(clients["connected_clients"])


def test_taskqueues_on_one_redis_share_a_connection_and_a_round_trip(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    try:
        for i in range(COUNT):
            app.enqueue_many([kubeq.Call("t.x", (j,), queue=f"tq{i}") for j in range(i % 3)])
    finally:
        app.close()
    admin = redis.Redis.from_url(redis_url)
    # the session's server may still hold other tests' clients: count this test's own
    _, baseline = reads_and_clients(admin)
    clients = SharedClients()
    sources = [RedisSource("ns", Secrets(), clients) for _ in range(COUNT)]
    specs = [tq_spec(redis_url, queues=(f"tq{i}",)) for i in range(COUNT)]
    seen: dict[str, tuple[int, int]] = {}

    async def main() -> list[list[kubeq.QueueStats]]:
        first = await asyncio.gather(
            *(s.read(spec) for s, spec in zip(sources, specs, strict=True))
        )
        seen["before"] = reads_and_clients(admin)
        # one poll tick: every TaskQueue reads at the same moment
        again = await asyncio.gather(
            *(s.read(spec) for s, spec in zip(sources, specs, strict=True))
        )
        seen["after"] = reads_and_clients(admin)
        for s in sources:
            await s.close()
        assert [len(x) for x in first] == [1] * COUNT
        return again

    try:
        stats = asyncio.run(main())
        (reads0, _), (reads1, conns1) = seen["before"], seen["after"]
        assert [(s[0].queue, s[0].backlog) for s in stats] == [
            (f"tq{i}", i % 3) for i in range(COUNT)
        ]
        # one connection for all 50 (beside the admin's), not one per TaskQueue
        opened = conns1 - baseline
        assert opened <= 1, f"{opened} connections for {COUNT} TaskQueues on one Redis"
        # one pipeline for the tick (+1 for admin's INFO), not one round trip per TaskQueue
        assert reads1 - reads0 <= 4, f"{reads1 - reads0} round trips for one tick"
        assert len(clients) == 0  # the last close closed the client
    finally:
        admin.close()


def test_broken_keys_fail_only_their_own_taskqueue(redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    admin.set(QueueKeys.of("broken").ready, "not a list")
    clients = SharedClients()
    good, bad = RedisSource("ns", Secrets(), clients), RedisSource("ns", Secrets(), clients)

    async def main() -> tuple[Any, Any]:
        results = await asyncio.gather(
            good.read(tq_spec(redis_url, queues=("fine",))),
            bad.read(tq_spec(redis_url, queues=("broken",))),
            return_exceptions=True,
        )
        await good.close()
        await bad.close()
        return results[0], results[1]

    try:
        ok, err = asyncio.run(main())
        assert [s.queue for s in ok] == ["fine"]
        assert isinstance(err, RedisDown)
        assert good.failures == 0 and bad.failures == 1
    finally:
        admin.close()


def test_a_different_password_gets_its_own_client(redis_url: str) -> None:
    clients = SharedClients()

    async def main() -> int:
        a = clients.acquire(redis_url, None)
        b = clients.acquire(redis_url, None)
        c = clients.acquire(redis_url, "other")
        n = len({id(a), id(b), id(c)})
        for s in (a, b, c):
            await clients.release(s)
        return n

    assert asyncio.run(main()) == 2
    assert len(clients) == 0


def test_passes_fall_on_a_shared_grid() -> None:
    assert on_grid(1.0, 100.25) == pytest.approx(0.75)
    assert on_grid(1.0, 7.0) == 1.0
    assert on_grid(2.0, 3.5) == pytest.approx(0.5)
    assert on_grid(0.0, 3.5) == 0.0


def test_a_read_that_times_out_leaves_no_task_ending_in_an_error() -> None:
    # kopf re-raises, when the operator stops, the error of every task still running then:
    # a stats read of one prefix failing while another's was under way made it exit 1
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    client = connections.async_client(url, socket_timeout=0.3)
    batch = StatsBatch(client)
    spawned: list[asyncio.Task[Any]] = []

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
            task = asyncio.Task(coro, loop=loop, **kw)
            spawned.append(task)
            return task

        loop.set_task_factory(factory)  # type: ignore[arg-type]
        got = await asyncio.gather(
            batch.read(["a"], "one"), batch.read(["b"], "two"), return_exceptions=True
        )
        await asyncio.wait([t for t in spawned if t is not asyncio.current_task()], timeout=10)
        await client.aclose()
        return got

    try:
        got = asyncio.run(main())
    finally:
        silent.close()
    assert all(isinstance(g, RedisError) for g in got), got  # each caller is told
    callers = {"StatsBatch.read"}  # the test's own tasks: they await the reads
    ended = [t for t in spawned if t.get_coro().__qualname__ not in callers]  # type: ignore[union-attr]
    assert ended, "the batch spawned no task"
    failed = [t for t in ended if t.done() and not t.cancelled() and t.exception()]
    assert not failed, [(t.get_coro().__qualname__, t.exception()) for t in failed]  # type: ignore[union-attr]
