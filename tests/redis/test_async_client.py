"""What only the async API has: many concurrent calls on one loop, cancelled waits, one
connection pool per event loop. The shared behaviour is in test_client.py (both forms)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
import qtasks
import redis

import kubeq
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker


@pytest.fixture
def runner(app: kubeq.App) -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop:
        yield loop
        loop.run(app.aclose())


def test_a_thousand_concurrent_adelay_calls_on_one_loop(
    app: kubeq.App, runner: asyncio.Runner, start_worker: StartWorker
) -> None:
    add = app.task(name="qtasks.add")(qtasks.add.func)

    async def burst() -> list[kubeq.Job]:
        return await asyncio.gather(*(add.adelay(i, i) for i in range(1000)))

    jobs = runner.run(burst())
    assert len({j.id for j in jobs}) == 1000
    assert app.queue().stats().backlog == 1000
    start_worker("--queue", "default", "--concurrency", "16")

    async def results() -> list[int]:
        return await asyncio.gather(*(j.aresult(timeout=120) for j in jobs))

    assert runner.run(results()) == [2 * i for i in range(1000)]


def _blocked_in_blmove(r: redis.Redis) -> bool:
    """A client of the shared server blocked in BLMOVE: only aresult's wait uses it (Redis's
    blocked_clients also counts other tests' leftovers, which let the cancel come early)."""
    return any(c.get("cmd") == "blmove" and "b" in c.get("flags", "") for c in r.client_list())


def test_cancelling_an_awaiting_aresult_stops_its_wait(
    app: kubeq.App, runner: asyncio.Runner, r: redis.Redis, start_worker: StartWorker
) -> None:
    job = app.queue("later").enqueue(qtasks.add, 20, 22)

    async def wait_then_cancel() -> None:
        waiter = asyncio.create_task(job.aresult(timeout=60))
        await asyncio.sleep(0)
        while not _blocked_in_blmove(r):  # until its own wait blocks in Redis
            await asyncio.sleep(0.02)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    runner.run(wait_then_cancel())
    # the cancelled wait left no client blocked in Redis, and the loop's client still works
    wait_until(lambda: not _blocked_in_blmove(r), what="the blocked wait to end")
    assert runner.run(job.astatus()) == "queued"
    start_worker("--queue", "later")
    assert runner.run(job.aresult(timeout=30)) == 42


def test_each_event_loop_gets_its_own_client(app: kubeq.App, start_worker: StartWorker) -> None:
    start_worker("--queue", "default")
    add = app.task(name="qtasks.add")(qtasks.add.func)
    clients: list[object] = []
    results: list[int] = []

    async def one(n: int) -> None:
        client = app.aredis
        clients.append(client)
        job = await add.adelay(n, 1)
        results.append(await job.aresult(timeout=30))
        assert app.aredis is client  # the same client for the whole life of the loop
        await app.aclose()

    threads = [threading.Thread(target=asyncio.run, args=(one(n),)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [1, 2, 3]
    assert len({id(c) for c in clients}) == 3


def test_many_awaiting_one_result(app: kubeq.App, start_worker: StartWorker) -> None:
    async def main() -> list[int]:
        job = await app.queue().aenqueue(qtasks.run_and_record, "awaiters", 0.5)
        waiters = [job.aresult(timeout=30) for _ in range(5)]
        start_worker("--queue", "default")
        out = await asyncio.gather(*waiters)
        await app.aclose()
        return out

    results = asyncio.run(main())
    assert len(results) == 5 and len(set(results)) == 1


def test_async_clients_pack_with_hiredis_and_send_what_the_sync_client_sends(
    app: kubeq.App, runner: asyncio.Runner
) -> None:
    """The asyncio clients kubeq makes (the worker's, the App's per-loop ones) pack commands
    with redis-py's hiredis packer, as its sync client does: the same bytes reach Redis, a
    multi-word command is split, and a value Redis cannot take is refused the same way."""
    from kubeq.store import connections

    made = [connections.async_client(app.redis_url), connections.LoopClients(app.redis_url)]
    sync = redis.Redis.from_url(app.redis_url)
    value = "é\x00 b" * 3

    async def use(client: redis.asyncio.Redis) -> list[object]:
        pool = client.connection_pool
        assert pool.connection_class.__name__.startswith("Hiredis"), pool.connection_class
        await client.delete("packed")
        pipe = client.pipeline(transaction=False)
        pipe.hset("packed", mapping={"s": value, "b": b"\xff\x00", "i": 7, "f": 1.5})
        pipe.execute_command("CONFIG GET", "maxmemory")
        replies: list[object] = await pipe.execute()
        with pytest.raises(redis.DataError):
            await client.set("packed:bool", True)  # type: ignore[arg-type]
        return replies

    for client in made:

        async def run(c: object = client) -> list[object]:
            got = c.get() if isinstance(c, connections.LoopClients) else c
            try:
                return await use(got)
            finally:
                await got.aclose()

        replies = runner.run(run())
        config = replies[1]
        assert isinstance(config, dict)
        assert {k.decode() if isinstance(k, bytes) else k for k in config} == {"maxmemory"}
        assert sync.hgetall("packed") == {
            b"s": value.encode(),
            b"b": b"\xff\x00",
            b"i": b"7",
            b"f": b"1.5",
        }
    sync.close()


def _clients_named(r: redis.Redis, name: str) -> int:
    """Connections Redis has open under ``name`` (CLIENT LIST: what the server sees)."""
    return sum(1 for c in r.client_list() if c.get("name") == name)


def _all_closed(r: redis.Redis, name: str, within: float = 5.0) -> int:
    """The connections still open under ``name`` once they are all closed, or at the deadline.
    A client's close reaches Redis as an event its loop handles after it answered commands
    already read, so a CLIENT LIST sent right after a close may still list the connection."""
    deadline = time.monotonic() + within
    while (n := _clients_named(r, name)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return n


def test_asyncio_run_after_asyncio_run_leaves_no_connection_open(r: redis.Redis) -> None:
    """A script that calls ``asyncio.run`` 200 times, each using the App's async client and
    never calling ``aclose``: each loop's connections close when its loop ends, so Redis
    sees none left open (counted with CLIENT LIST), and the App still works afterwards."""
    import gc

    name = "kubeq-asyncio-run-loop"
    url = r.get_connection_kwargs()
    app = kubeq.App(f"redis://{url['host']}:{url['port']}/0?client_name={name}")
    add = app.task(name="qtasks.add")(qtasks.add.func)

    async def once(n: int) -> str:
        job = await add.adelay(n, n)
        return await job.astatus()

    for n in range(200):
        assert asyncio.run(once(n)) == "queued"
    gc.collect()
    assert _all_closed(r, name) == 0
    assert app.queue().stats().backlog == 200
    app.close()  # its sync client's connection carries the name too

    async def explicit() -> None:  # aclose closes the running loop's client at once
        await add.adelay(1, 1)
        assert _clients_named(r, name) == 1
        await app.aclose()
        assert _all_closed(r, name) == 0
        await add.adelay(2, 2)  # a later call on the same loop opens a new one

    asyncio.run(explicit())
    gc.collect()
    assert _all_closed(r, name) == 0

    for n in range(20):  # loops closed by hand, without shutting their generators down
        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(once(n)) == "queued"
        loop.close()
    asyncio.run(once(0))  # the next loop's first call drops what the closed loops held
    gc.collect()
    assert _all_closed(r, name) == 0
