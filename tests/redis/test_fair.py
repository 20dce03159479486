"""Fair queues with real worker processes: keys take turns among ready jobs of one priority.

The bounds come from start-time fair queuing (docs/fairness.md): with equal weights each key
with ready jobs is served once per round, so the j-th job of a key is fetched within the
first j x (keys) jobs; for weights wa, wb over any stretch where both have ready jobs,
|na/wa - nb/wb| <= 1/wa + 1/wb. The tests that assert an order run one thread: with c threads
a job's record can fall behind others fetched after it (its thread descheduled between the
job's start and its record), by more than c places on a loaded machine.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import qtasks
import redis

import kubeq
from kubeq.store import fairness
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, fenced
from kubeq.testing import drain
from tests.redis.helpers import max_running, wait_until
from tests.redis.workers import StartWorker

Q = "fair"


def _order(r: redis.Redis, tag: str) -> list[str]:
    return [v.decode() for v in r.lrange(f"test:order:{tag}", 0, -1)]


def _no_fair_state(r: redis.Redis) -> None:
    keys = QueueKeys.of(Q)
    left = [k for k in r.keys(keys.base + "fair*") if not k.endswith(b"fair:weights")]
    assert left == [], left


def test_quiet_tenants_are_served_within_their_rounds_behind_a_noisy_one(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    order = qtasks.record_order
    calls = [order.s("t", "noisy").set(queue=Q, fair_key="noisy") for _ in range(10_000)]
    for t in range(5):
        calls += [order.s("t", f"quiet{t}").set(queue=Q, fair_key=f"quiet{t}") for _ in range(10)]
    app.enqueue_many(calls)
    # one thread and no prefetch: the jobs start, and record themselves, in the order they
    # were fetched (with c threads a thread descheduled between its job's start and its
    # record lets others record past it, by more than c places on a loaded machine; a
    # prefetched job handed back when runs turn slow is fetched again later)
    concurrency = 1
    start_worker("--queue", Q, "--concurrency", str(concurrency), "--prefetch-ms", "0")
    quiet = lambda: [i for i, v in enumerate(_order(r, "t")) if v != "noisy"]  # noqa: E731
    wait_until(lambda: len(quiet()) == 50, timeout=120, what="the quiet tenants' 50 jobs")
    # 6 keys with ready jobs: a quiet tenant's 10th job is fetched within the first 60
    assert max(quiet()) < 6 * 10 + concurrency, _order(r, "t")[:80]
    seen = _order(r, "t")
    for t in range(5):
        mine = [i for i, v in enumerate(seen) if v == f"quiet{t}"]
        for j, at in enumerate(mine, start=1):
            assert at < 6 * j + concurrency, (t, j, at)
    assert app.queue(Q).stats().backlog > 9_000  # the noisy tenant still waits, behind them


def test_weights_three_to_one_give_three_to_one_service(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    queue = app.queue(Q)
    queue.set_weights({"a": 3, "b": 1})
    assert queue.weights() == {"a": 3.0, "b": 1.0}
    order = qtasks.record_order
    calls = [order.s("w", "b").set(queue=Q, fair_key="b") for _ in range(300)]
    calls += [order.s("w", "a").set(queue=Q, fair_key="a") for _ in range(600)]
    app.enqueue_many(calls)
    start_worker("--queue", Q, "--concurrency", "1")
    wait_until(lambda: r.llen("test:order:w") == 900, timeout=120, what="900 jobs")
    seen = _order(r, "w")
    na = nb = 0
    for v in seen[:800]:  # both have ready jobs until a's 600th (at 800 exactly)
        na, nb = na + (v == "a"), nb + (v == "b")
        # |na/3 - nb/1| <= 1/3 + 1, so |na - 3 nb| <= 4 after every job
        assert abs(na - 3 * nb) <= 4, (na, nb)
    assert (na, nb) == (600, 200)
    _no_fair_state(r)


def test_priorities_come_before_fairness(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    order = qtasks.record_order
    calls = [order.s("p", "low").set(queue=Q, fair_key="x") for _ in range(300)]
    calls += [order.s("p", "high").set(queue=Q, fair_key="y", priority=9) for _ in range(20)]
    calls += [order.s("p", "plain-high").set(queue=Q, priority=9) for _ in range(20)]
    app.enqueue_many(calls)
    start_worker("--queue", Q, "--concurrency", "1")
    wait_until(lambda: r.llen("test:order:p") == 340, timeout=120, what="340 jobs")
    seen = _order(r, "p")
    assert sorted(seen[:40]) == ["high"] * 20 + ["plain-high"] * 20, seen[:45]
    # within priority 9, the unkeyed jobs are one more key: the two take turns
    assert all(abs(seen[:k].count("high") - seen[:k].count("plain-high")) <= 1 for k in range(40))
    _no_fair_state(r)


def test_fair_keys_with_concurrency_limits_and_retries(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    # tenant "big" runs under a concurrency limit of 2 (per_key), with a fairness key; the
    # small tenant is unlimited: both finish, the limit holds, nothing keyed is left
    big = [qtasks.per_key.s("cl", "big", 0.01).set(queue=Q, fair_key="big") for _ in range(60)]
    small = [qtasks.fail_until.s(f"fr{i}", 1).set(queue=Q, fair_key="small") for i in range(20)]
    jobs = app.enqueue_many(big + small)
    for _ in range(2):
        start_worker("--queue", Q, "--concurrency", "6")
    for job in jobs:
        job.result(timeout=120)
    assert max_running(r.lrange("test:span:cl:big", 0, -1)) == 2
    assert app.queue(Q).stats().backlog == 0
    _no_fair_state(r)


def test_cancel_purge_and_stats_by_key(app: kubeq.App, r: redis.Redis) -> None:
    order = qtasks.record_order
    queue = app.queue(Q)
    a = app.enqueue_many([order.s("s", "a").set(queue=Q, fair_key="a") for _ in range(5)])
    app.enqueue_many([order.s("s", "b").set(queue=Q, fair_key="b") for _ in range(3)])
    app.enqueue_many([order.s("s", "-").set(queue=Q) for _ in range(2)])
    fs = queue.fair_stats()
    assert (fs.active_keys, fs.unkeyed_backlog) == (2, 2)
    assert {k.key: k.backlog for k in fs.keys} == {"a": 5, "b": 3}
    assert queue.stats().backlog == 10
    for job in a:
        assert job.cancel()
    fs = queue.fair_stats()
    assert [k.key for k in fs.keys] == ["b"] and fs.active_keys == 1
    assert queue.purge() == 5
    assert queue.stats().backlog == 0
    _no_fair_state(r)


@pytest.mark.also_redis_cluster
def test_keyed_jobs_on_a_partitioned_queue_and_on_redis_cluster(redis_url: str) -> None:
    # every partition gets the weights and its own fair order; the by-key numbers add up
    app = kubeq.App(redis_url, partitions={"pf": 2})
    seen: dict[str, list[str]] = {"pf#0": [], "pf#1": []}

    @app.task(queue="pf", fair_key=lambda tenant, i: tenant)
    def work(tenant: str, i: int) -> None:
        job = kubeq.current_job()
        assert job is not None
        seen[job.queue].append(tenant)

    try:
        queue = app.queue("pf")
        queue.set_weights({"big": 2})
        assert all(fairness.read_weights(app.redis, p) == {"big": 2.0} for p in ["pf#0", "pf#1"])
        app.enqueue_many([work.s("big", i) for i in range(200)] + [work.s("small", 0)] * 4)
        fs = queue.fair_stats()
        assert {k.key: k.backlog for k in fs.keys} == {"big": 200, "small": 4}
        assert fs.active_keys == 4  # two keys on each partition
        assert queue.stats().fair_keys == 4
        report = drain(app, "pf", concurrency=1)
        assert report.finished == 204
        # on each partition (100 big of weight 2, 2 small of weight 1) the j-th small job
        # has at most 2j big ones and j-1 small ones before it: place <= 3j - 1 (0-based)
        for part, order in seen.items():
            small = [i for i, t in enumerate(order) if t == "small"]
            assert len(small) == 2 and all(at <= 3 * j - 1 for j, at in enumerate(small, 1)), (
                part,
                order[:8],
            )
        for p in ["pf#0", "pf#1"]:
            keys = QueueKeys.of(p)
            assert app.redis.exists(keys.fair, keys.fair_state, keys.fair_idle) == 0
    finally:
        app.close()


def test_the_operators_weights_replace_a_queues_and_say_what_changed(
    app: kubeq.App, r: redis.Redis
) -> None:
    app.queue("a").set_weights({"by-hand": 5})

    async def sync(wanted: dict[str, dict[str, float]]) -> list[str]:
        client = kubeq.store.connections.async_client(app.redis_url)
        try:
            return await fairness.sync_weights_async(client, wanted)
        finally:
            await client.aclose()

    assert asyncio.run(sync({"a": {"acme": 3.0}, "b": {"": 2.0}})) == [
        "a: fairness weights acme=3",
        "b: fairness weights (no key)=2",
    ]
    assert app.queue("a").weights() == {"acme": 3.0}
    assert app.queue("b").weights() == {"": 2.0}
    assert asyncio.run(sync({"a": {"acme": 3.0}, "b": {"": 2.0}})) == []  # nothing to change


def test_a_key_of_200_characters_beyond_ascii_is_enqueued_and_takes_turns(
    app: kubeq.App, start_worker: StartWorker, r: redis.Redis
) -> None:
    # the limit is 200 characters, as check_fair_key says: 400 bytes of UTF-8 here
    wide = "é" * 200
    calls = [qtasks.record_order.s("u", wide).set(queue=Q, fair_key=wide) for _ in range(3)]
    calls += [qtasks.record_order.s("u", "x").set(queue=Q, fair_key="x") for _ in range(3)]
    app.enqueue_many(calls)
    keys = QueueKeys.of(Q)
    assert sorted(r.zrange(keys.base + "fair", 0, -1)) == sorted([wide.encode(), b"x"])
    start_worker("--queue", Q, "--concurrency", "1")
    wait_until(lambda: r.llen("test:order:u") == 6, timeout=120, what="6 jobs")
    seen = _order(r, "u")
    assert sorted(seen[:2]) == sorted([wide, "x"]), seen  # one turn each
    _no_fair_state(r)


def test_a_fair_key_past_the_limit_from_a_raw_producer_is_refused_and_nothing_written(
    r: redis.Redis,
) -> None:
    # a producer speaking the protocol without the client's check (docs/protocol.md)
    keys = QueueKeys.of(Q)
    control = json.dumps({"fk": "x" * 801})
    args = [keys.base, 1, "t0k3n", 1, 5, "0", 5, 86400, control, "j1", "{}"]
    declared = fenced(list(keys.script_keys))
    flags = r.eval(LUA["enqueue"].script, len(declared), *declared, *args)
    assert flags == [-1]
    assert not r.exists(keys.base + "job:j1") and r.zcard(keys.ready) == 0
