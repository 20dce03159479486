"""A process keeps each script's SHA1, not its text (kubeq.store.scripts): the text is made
again only when Redis answers NOSCRIPT (a restarted Redis, a SCRIPT FLUSH). Called directly
through ``Scripts``, on a sync or an asyncio client, a script Redis has forgotten is loaded
and sent again, and it is the very text whose SHA1 the process sends."""

from __future__ import annotations

import asyncio

import qtasks
import redis
import redis.asyncio

import kubeq
from kubeq.store.connections import async_client
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, Scripts, source
from kubeq.store.stats import FLOW_READ_MOST, WORKER_TTL_MS


def test_every_sha_is_its_texts() -> None:
    import hashlib

    for name, lua in LUA.items():
        assert hashlib.sha1(source(name).encode()).hexdigest() == lua.sha, name
        assert lua.script == source(name)


def test_a_forgotten_script_is_loaded_again_sync(app: kubeq.App, r: redis.Redis) -> None:
    job = app.queue("texts").enqueue(qtasks.add, 1, 2, delay=3600)
    r.script_flush()
    assert job.cancel() is True
    assert r.script_exists(LUA["cancel"].sha) == [True]
    assert job.status() == "cancelled"


def test_a_forgotten_script_is_loaded_again_asyncio(redis_url: str, r: redis.Redis) -> None:
    q = QueueKeys.of("texts-a")

    async def stats() -> object:
        client = async_client(redis_url)
        try:
            return await Scripts(client).stats(
                keys=q.script_keys, args=[WORKER_TTL_MS, FLOW_READ_MOST]
            )
        finally:
            await client.aclose()

    r.script_flush()
    assert isinstance(asyncio.run(stats()), list)
    assert r.script_exists(LUA["stats"].sha) == [True]
