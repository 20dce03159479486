"""What firing a burst of due schedules costs Redis: each pass reads a claimed schedule's
definition once to claim it and once to commit it, whatever the burst's size, and every due
time is still enqueued once. The Redis is the test's own, so no other client's commands are
counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import kubeq
from kubeq.schedules import Schedule
from kubeq.store import schedules as store
from kubeq.store.keys import schedule_key, schedule_keys
from kubeq.testing.server import RedisServer

N = 300
READS = ("hget", "hmget", "hexists", "hgetall")


@pytest.fixture
def own(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def reads_of_definitions(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in READS)


def test_a_burst_reads_each_definition_once_per_claim_and_once_per_commit(
    own: RedisServer,
) -> None:
    app, r = kubeq.App(own.url), redis.Redis.from_url(own.url)
    defs = [Schedule(f"d-{i:04}", "mail.digest", queue="mail", every=86400) for i in range(N)]
    store.run(r, [store.upsert_call(s, "kubeq", None, None) for s in defs])
    due = int(r.time()[0])
    for s in defs:
        r.hset(schedule_key(s.id), "next", due)
        r.zadd(schedule_keys()[0], {s.id: due})
    r.config_resetstat()
    fired = app.schedules.fire_due()
    reads = reads_of_definitions(r)
    assert sorted(x[2] for x in fired.runs) == sorted(s.job_id(due) for s in defs)
    assert app.queue("mail").stats().backlog == N
    assert reads <= 2 * N + 10, f"{reads} reads of definitions for {N} schedules"
