"""The operator's Redis source against a real redis-server: the numbers it reads, the
password it takes from the Secret (and re-reads when it stops working), and errors that name
the field to fix without ever showing a password."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis

import kubeq
from kubeq_operator.redis_source import RedisDown, RedisSource
from kubeq_operator.spec import TaskQueueSpec, parse
from tests.support.redisserver import RedisServer, free_port
from tests.support.sentinel import SentinelTopology

pytestmark = pytest.mark.redis


def tq_spec(url: str, *, secret: str | None = None, queues: tuple[str, ...] = ("a", "b")) -> Any:
    redis_doc: dict[str, Any] = {"url": url}
    if secret:
        redis_doc["secretRef"] = {"name": secret}
    return parse(
        {"redis": redis_doc, "queues": list(queues), "worker": {"image": "w:1", "tasks": "t"}}
    )


class Secrets:
    """Stands in for the Kubernetes Secrets the source reads (it is given a reader)."""

    def __init__(self, **values: str) -> None:
        self.values = values
        self.reads: list[tuple[str, str, str]] = []

    async def __call__(self, namespace: str, name: str, key: str) -> str | None:
        self.reads.append((namespace, name, key))
        return self.values.get(f"{name}/{key}")


def test_reads_every_queue_in_one_call(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    try:
        app.enqueue_many([kubeq.Call("t.x", (i,), queue="a") for i in range(3)])
        app.enqueue_many([kubeq.Call("t.x", (i,), queue="b", delay=60) for i in range(2)])
    finally:
        app.close()
    source = RedisSource("ns", Secrets())

    async def main() -> list[kubeq.QueueStats]:
        try:
            return await source.read(tq_spec(redis_url))
        finally:
            await source.close()

    stats = asyncio.run(main())
    assert [(s.queue, s.backlog, s.delayed) for s in stats] == [("a", 3, 0), ("b", 0, 2)]
    assert source.failures == 0


def test_unreachable_redis_names_the_field_and_hides_the_password() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    source = RedisSource("ns", Secrets())
    # the parser refuses such a URL (spec.redis.secretRef instead); the source must still
    # never print one, should a spec reach it some other way
    plain = tq_spec(url.replace(":hunter2@", ""))
    spec = dataclasses.replace(plain, redis=dataclasses.replace(plain.redis, url=url))

    async def main() -> list[RedisDown]:
        errors = []
        for _ in range(2):
            with pytest.raises(RedisDown) as info:
                await source.read(spec)
            errors.append(info.value)
        return errors

    errors = asyncio.run(main())
    assert source.failures == 2
    for e in errors:
        assert e.reason == "RedisUnreachable"
        assert "spec.redis.url=redis://:***@127.0.0.1" in str(e)
        assert "hunter2" not in str(e)


def test_missing_secret_says_how_to_create_it() -> None:
    source = RedisSource("shop", Secrets())
    with pytest.raises(RedisDown) as info:
        asyncio.run(source.read(tq_spec("redis://127.0.0.1:1/0", secret="redis-auth")))
    assert info.value.reason == "SecretNotFound"
    message = str(info.value)
    assert "spec.redis.secretRef" in message
    assert "kubectl -n shop create secret generic redis-auth --from-literal=password=" in message
    assert source.failures == 1


def test_password_from_the_secret_and_reread_after_a_rotation(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        admin = redis.Redis.from_url(server.url)
        admin.config_set("requirepass", "first")
        admin.close()
        secrets = Secrets(**{"redis-auth/password": "first"})
        source = RedisSource("ns", secrets)
        spec: TaskQueueSpec = tq_spec(server.url, secret="redis-auth", queues=("a",))

        async def read() -> list[kubeq.QueueStats]:
            return await source.read(spec)

        async def main() -> None:
            assert [s.queue for s in await read()] == ["a"]
            assert secrets.reads == [("ns", "redis-auth", "password")]
            await read()
            assert len(secrets.reads) == 1  # cached between refreshes

            # the password is rotated in Redis before the Secret is updated
            rotate = redis.Redis.from_url(server.url, password="first")
            rotate.config_set("requirepass", "second")
            rotate.client_kill_filter(_type="normal", skipme=True)  # connections log in again
            rotate.close()
            with pytest.raises(RedisDown) as info:
                await read()
            assert info.value.reason == "RedisUnreachable"
            assert "first" not in str(info.value) and "second" not in str(info.value)
            # the Secret catches up: the next read re-reads it and works
            secrets.values["redis-auth/password"] = "second"
            assert [s.queue for s in await read()] == ["a"]
            assert len(secrets.reads) >= 2
            assert source.failures == 0
            await source.close()

        asyncio.run(main())
    finally:
        server.stop()


def test_schedules_enqueue_through_the_same_client(redis_url: str) -> None:
    source = RedisSource("ns", Secrets())
    spec = tq_spec(redis_url, queues=("a", "b"))
    call = kubeq.Call("t.x", (1,), {"k": "v"}, queue="b", job_id="sched-1")

    async def main() -> None:
        try:
            assert await source.enqueue(spec, [call]) == ["sched-1"]
            client = await source.client(spec)
            assert await source.enqueue(spec, [call]) == ["sched-1"]
            (no_queue,) = await source.enqueue(spec, [kubeq.Call("t.y", priority=9)])
            assert await source.client(spec) is client  # one client for reads and enqueues
            stats = await source.read(spec)
            # the job id de-duplicates; a call without a queue goes to the first queue
            assert [(s.queue, s.backlog) for s in stats] == [("a", 1), ("b", 1)]
            assert no_queue != "sched-1"
        finally:
            await source.close()

    asyncio.run(main())
    app = kubeq.App(redis_url)
    try:
        assert set(app.redis.smembers("kubeq:queues")) == {b"a", b"b"}
        job = app.job("sched-1", queue="b")
        info = job.info()
        payload = json.loads(info.payload)
        assert (info.task, payload["args"], payload["kwargs"]) == ("t.x", [1], {"k": "v"})
        assert job.status() == "queued"
    finally:
        app.close()


def test_reads_on_through_a_sentinel_failover_without_a_restart(tmp_path: Path) -> None:
    """The operator's source on a Sentinel URL: after a kill -9 of the master it reports
    RedisDown (the loop holds the replicas) while the sentinels promote a replica, then reads
    the same numbers from the new master with the same RedisSource object."""
    topology = SentinelTopology(tmp_path / "sentinel")
    topology.start()
    try:
        app = kubeq.App(topology.url, wait_replicas=2)  # both replicas have the jobs
        app.enqueue_many([kubeq.Call("t.x", (i,), queue="a") for i in range(3)])
        app.close()
        source = RedisSource("ns", Secrets())
        spec = tq_spec(topology.url)

        async def main() -> tuple[list[kubeq.QueueStats], list[kubeq.QueueStats], int]:
            try:
                before = await source.read(spec)
                old = topology.kill_master()
                await asyncio.to_thread(topology.wait_failover, old, 180)
                downs, deadline = 0, time.monotonic() + 120
                while True:
                    try:
                        return before, await source.read(spec), downs
                    except RedisDown as e:
                        assert e.reason == "RedisUnreachable"
                        assert time.monotonic() < deadline, f"still down: {e}"
                        downs += 1
                        await asyncio.sleep(0.5)
            finally:
                await source.close()

        before, after, _ = asyncio.run(main())
        assert [(s.queue, s.backlog) for s in before] == [("a", 3), ("b", 0)]
        assert [(s.queue, s.backlog) for s in after] == [("a", 3), ("b", 0)]
        assert source.failures == 0
    finally:
        topology.stop()
