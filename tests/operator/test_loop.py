"""The per-TaskQueue loop's decisions, without kopf: what the policy is shown, which replicas
are believed, and which Events and conditions a Redis outage and its end produce (against a
real redis-server). Nothing is swallowed: a failed Event post is logged with its reason."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from kubeq import defaults
from kubeq.store.stats import QueueStats
from kubeq_operator import metrics
from kubeq_operator.loop import TaskQueueLoop
from kubeq_operator.policy import observe
from kubeq_operator.reconcile import OWN_WRITE_SECONDS, DeploymentView, ReplicaTracker
from kubeq_operator.redis_source import RedisSource
from kubeq_operator.spec import parse
from kubeq_operator.status import Condition
from tests.support.redisserver import free_port


def qs(queue: str, backlog: int, in_flight: int, paused: bool = False) -> QueueStats:
    return QueueStats(queue, 0.0, backlog, in_flight, 0, 0, 0.0, paused)


def view(replicas: int) -> DeploymentView:
    return DeploymentView("tq-worker", replicas, replicas, replicas, "hash")


def test_paused_queues_do_not_ask_for_workers() -> None:
    obs = observe([qs("a", 10, 2), qs("b", 50, 3, paused=True)], current=1)
    assert (obs.backlog, obs.in_flight, obs.current_replicas, obs.ok) == (10, 5, 1, True)
    failed = observe(None, current=3)
    assert (failed.backlog, failed.in_flight, failed.ok) == (0, 0, False)


def test_a_rate_limited_queue_asks_only_for_what_its_rate_lets_start() -> None:
    from dataclasses import replace

    limited = replace(qs("a", 5000, 10), rate_limit=10.0, rate_limited=True)
    obs = observe([limited, qs("b", 7, 0)], current=1, poll_seconds=1.0)
    assert (obs.backlog, obs.in_flight) == (10 + 7, 10)


def test_own_scale_write_is_believed_until_the_watch_shows_it() -> None:
    tracker = ReplicaTracker()
    assert tracker.current(None, 0.0) is None  # no Deployment, nothing written
    assert tracker.current(view(2), 0.0) == 2
    tracker.wrote(5, 100.0)
    assert tracker.current(None, 100.5) == 5
    assert tracker.current(view(2), 101.0) == 5  # the watch lags
    assert tracker.current(view(2), 100.0 + OWN_WRITE_SECONDS + 1) == 2  # someone else set 2
    tracker.wrote(4, 200.0)
    assert tracker.current(view(4), 200.1) == 4
    assert tracker.expected is None  # seen: forgotten


class Events:
    def __init__(self, fail: Exception | None = None) -> None:
        self.posted: list[tuple[str, str, str]] = []
        self.fail = fail

    def __call__(self, type_: str, reason: str, message: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.posted.append((type_, reason, message))


def make_loop(events: Events, name: str = "tq") -> TaskQueueLoop:
    async def no_secret(namespace: str, name: str, key: str) -> str | None:
        return None

    return TaskQueueLoop(
        "ns",
        name,
        {"metadata": {"name": name, "generation": 1}, "spec": {}},
        logging.getLogger("test.loop"),
        lambda: None,
        events,
        RedisSource("ns", no_secret),
    )


@pytest.mark.redis
def test_a_redis_outage_posts_one_warning_and_one_recovery(redis_url: str) -> None:
    events = Events()
    loop = make_loop(events, "outage")
    down = parse(
        {
            "redis": {"url": f"redis://127.0.0.1:{free_port()}/0"},
            "worker": {"image": "w:1", "tasks": "t"},
        }
    )
    up = parse({"redis": {"url": redis_url}, "worker": {"image": "w:1", "tasks": "t"}})

    def errors() -> float:
        labels = {"namespace": "ns", "taskqueue": "outage"}
        return metrics.REGISTRY.get_sample_value("kubeq_redis_errors_total", labels) or 0.0

    before = errors()

    async def main() -> list[Any]:
        try:
            return [await loop.read(down), await loop.read(down), await loop.read(up)]
        finally:
            await loop.close()

    first, second, third = asyncio.run(main())
    assert first is None and second is None
    assert [s.queue for s in third] == [defaults.QUEUE]
    assert [(t, r) for t, r, _ in events.posted] == [
        ("Warning", "RedisUnreachable"),  # once, not once per failed pass
        ("Normal", "RedisReachable"),
    ]
    assert "spec.redis.url=redis://127.0.0.1:" in events.posted[0][2]
    assert errors() == before + 2
    c = loop.book.get(Condition.REDIS_REACHABLE)
    assert c is not None and (c["status"], c["reason"]) == ("True", "Connected")


def test_a_failed_event_is_logged_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    loop = make_loop(Events(fail=LookupError("no event queue: not inside the operator")))
    with caplog.at_level(logging.WARNING, logger="kubeq_operator"):
        loop.event("Warning", "InvalidSpec", "spec.queues: bad")
    (record,) = caplog.records
    message = record.getMessage()
    assert "Warning Event InvalidSpec on ns/tq" in message
    assert "LookupError: no event queue: not inside the operator" in message


def test_a_failed_pod_mark_is_logged_and_the_others_are_marked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The API calls are stand-ins here (the cluster tier runs the real ones): what is tested
    is that one pod's failed annotation is reported, not lost in ``gather``."""
    from kubernetes.client.exceptions import ApiException

    from kubeq_operator import kube
    from kubeq_operator import loop as loop_mod

    marked: list[tuple[str, dict[str, str]]] = []

    async def list_pods(namespace: str, selector: str) -> list[dict[str, Any]]:
        assert selector == "kubeq.dev/taskqueue=tq,app.kubernetes.io/component=worker"
        return [{"metadata": {"name": n}} for n in ("tq-worker-a", "tq-worker-b")]

    async def annotate_pod(namespace: str, name: str, annotations: dict[str, str]) -> None:
        if name == "tq-worker-a":
            raise ApiException(status=404, reason="Not Found")
        marked.append((name, annotations))

    monkeypatch.setattr(kube, "list_pods", list_pods)
    monkeypatch.setattr(kube, "annotate_pod", annotate_pod)
    monkeypatch.setattr(loop_mod, "COST_SETTLE_SECONDS", 0.0)
    loop = make_loop(Events())
    busy = qs("a", 0, 3)
    busy.workers.update({"tq-worker-b:1:x": 3})
    with caplog.at_level(logging.WARNING, logger="kubeq_operator"):
        asyncio.run(loop.mark_pods([busy]))
    assert marked == [("tq-worker-b", {"controller.kubernetes.io/pod-deletion-cost": "1003"})]
    (record,) = caplog.records
    assert record.getMessage() == (
        "could not mark pod ns/tq-worker-a with deletion cost -100: API error 404 Not Found"
    )


@pytest.mark.redis
def test_spec_rate_limits_are_applied_to_redis_and_withdrawn(redis_url: str) -> None:
    import redis as redis_lib

    from kubeq.store.keys import QueueKeys

    base = {
        "redis": {"url": redis_url},
        "worker": {"image": "w:1", "tasks": "t"},
        "queues": ["a", "b"],
    }
    with_limit = parse({**base, "rateLimits": {"a": "20/s"}})
    without = parse(base)
    r = redis_lib.Redis.from_url(redis_url)
    r.hset(QueueKeys.of("b").rate_limit, mapping={"n": 5, "ms": 1000, "b": 2})  # kubeq limit
    events = Events()
    loop = make_loop(events, "limits")

    async def main() -> list[list[Any]]:
        try:
            stats = []
            for spec, generation in ((with_limit, 1), (with_limit, 1), (without, 2)):
                await loop.sync_rate_limits(spec, generation)
                stats.append(await loop.read(spec))
            return stats
        finally:
            await loop.close()

    first, second, third = asyncio.run(main())
    assert [(s.queue, s.rate_limit) for s in first] == [("a", 20.0), ("b", 5.0)]
    assert [s.rate_limit for s in second] == [20.0, 5.0]  # unchanged: no second Event
    # withdrawn from the spec: the operator's own limit goes, the one set by hand stays
    assert [(s.queue, s.rate_limit) for s in third] == [("a", 0.0), ("b", 5.0)]
    assert [(t, reason, m) for t, reason, m in events.posted if reason == "RateLimits"] == [
        ("Normal", "RateLimits", "a: at most 20/s"),
        ("Normal", "RateLimits", "a: no rate limit"),
    ]
    r.close()


@pytest.mark.redis
def test_a_taskqueue_without_rate_limits_does_not_recheck_them(redis_url: str) -> None:
    import redis as redis_lib

    from kubeq_operator.loop import RATE_SYNC_SECONDS

    spec = parse({"redis": {"url": redis_url}, "worker": {"image": "w:1", "tasks": "t"}})
    r = redis_lib.Redis.from_url(redis_url)
    loop = make_loop(Events(), "nolimits")

    def hmgets() -> int:
        stats: Any = r.info("commandstats")
        return int(stats.get("cmdstat_hmget", {}).get("calls", 0))

    async def main() -> tuple[int, int]:
        try:
            await loop.sync_rate_limits(spec, 1)  # first sight: removes a leftover of ours
            first = hmgets()
            loop._rates_at -= RATE_SYNC_SECONDS + 1  # the periodic re-check is due
            await loop.sync_rate_limits(spec, 1)
            return first, hmgets()
        finally:
            await loop.close()

    first, later = asyncio.run(main())
    r.close()
    assert first >= 1
    assert later == first, "a TaskQueue with no rateLimits re-read them from Redis"


@pytest.mark.redis
def test_the_drain_rate_is_read_from_the_workers_published_counters(redis_url: str) -> None:
    from kubeq.store import connections
    from kubeq.store import workers as workerinfo
    from kubeq.worker import info as worker_info

    loop = make_loop(Events(), "rate")
    spec = parse(
        {
            "redis": {"url": redis_url, "prefix": "ratetest"},
            "queues": ["rq"],
            "worker": {"image": "i", "tasks": "t"},
            "scaling": {"targetWaitSeconds": 10},
        }
    )
    busy = [qs("rq", 100, 4)]

    async def publish(at: float, finished: int) -> None:
        client = connections.async_client(redis_url)
        try:
            doc = worker_info.snapshot(
                worker_id="w1",
                queues=["rq"],
                concurrency=4,
                pool="thread",
                started_at=0.0,
                counts={"rq": {"finished": finished}},
                now=at,
            )
            await workerinfo.publish(client, "ratetest", "w1", doc, 60_000)
        finally:
            await client.aclose()

    async def main() -> list[float | None]:
        try:
            t0 = time.time()
            await publish(t0 - 2.0, 4)
            first = await loop.drain_rate(spec, busy)  # jobs wait from now on
            await publish(t0 + 1.0, 10)  # the span began before they waited: not a sample
            second = await loop.drain_rate(spec, busy)
            await publish(t0 + 3.0, 16)  # 6 jobs in 2 s, saturated all through
            third = await loop.drain_rate(spec, busy)
            return [first, second, third]
        finally:
            await loop.close()

    assert asyncio.run(main()) == [None, None, pytest.approx(3.0)]
