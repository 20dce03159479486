"""An asyncio client's script calls reach Redis before the callbacks already ready on the
event loop run (kubeq/store/direct.py): in a worker those callbacks are the jobs its last
fetch started, and Redis works on the next round trip while they run. A dropped connection
fails one call, as redis-py's own path does, and the next call connects again; the calls
hold no more connections than the pool's own path. On the session's real redis-server."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from kubeq.store.connections import async_client
from kubeq.store.scripts import Lua, run_pipeline_async

pytestmark = pytest.mark.redis

MARK = Lua("test_direct_mark", "redis.call('SET', KEYS[1], ARGV[1]); return ARGV[1]")


def test_a_call_is_written_before_the_callbacks_ready_on_the_loop_run(redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url)
    seen: list[bool] = []

    def ready_job() -> None:
        """Blocks the loop as a job's own work would, looking for the call's write."""
        deadline = time.monotonic() + 5
        while not sync.exists("kubeq:{direct}:second") and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(bool(sync.exists("kubeq:{direct}:second")))

    def clients() -> int:
        return int(sync.info("clients")["connected_clients"])

    async def main() -> list[object]:
        client = async_client(redis_url)
        try:
            await run_pipeline_async(client, [(MARK, ["kubeq:{direct}:first"], ["1"])])  # connects
            asyncio.get_running_loop().call_soon(ready_job)
            replies = await run_pipeline_async(
                client,
                [(MARK, ["kubeq:{direct}:second"], ["2"]), (MARK, ["kubeq:{direct}:third"], ["3"])],
            )
            opened.append(clients() - before)
            return replies
        finally:
            await client.aclose()

    before = clients()
    opened: list[int] = []

    assert asyncio.run(main()) == [b"2", b"3"]
    # the job saw the call's write while it ran: Redis did not wait for the job to end
    assert seen == [True]
    assert opened == [1]  # one connection, back in its pool between the calls
    sync.close()


def test_a_dropped_connection_fails_one_call_and_the_next_connects_again(redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url)

    async def main() -> tuple[str, list[object]]:
        client = async_client(redis_url)
        try:
            await run_pipeline_async(
                client, [(MARK, ["kubeq:{direct}:a"], ["1"]), (MARK, ["kubeq:{direct}:b"], ["2"])]
            )
            for info in sync.client_list():  # the server drops every client but this one
                if int(info["id"]) != sync.client_id():
                    sync.client_kill_filter(_id=info["id"])
            try:
                await run_pipeline_async(client, [(MARK, ["kubeq:{direct}:c"], ["3"])])
                failed = "no error"
            except redis.ConnectionError as exc:
                failed = type(exc).__name__
            again = await run_pipeline_async(
                client, [(MARK, ["kubeq:{direct}:d"], ["4"]), (MARK, ["kubeq:{direct}:e"], ["5"])]
            )
            return failed, again
        finally:
            await client.aclose()

    failed, again = asyncio.run(main())
    assert failed == "ConnectionError"
    assert again == [b"4", b"5"]
    keys = [f"kubeq:{{direct}}:{k}" for k in "abcde"]
    assert sync.mget(keys) == [b"1", b"2", None, b"4", b"5"]
    sync.close()
