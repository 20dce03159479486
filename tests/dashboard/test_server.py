"""The dashboard's HTTP surface against a real Redis, in process (Starlette's TestClient):
the token, CSRF and Origin rules, read-only refusals, paging, redaction, and the shared poll.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

import kubeq
from kubeq.dashboard import Config, create_app
from kubeq.dashboard.hub import Hub, View
from kubeq.store import workers as workerinfo
from kubeq.store.connections import async_client
from kubeq.worker import info as worker_info


def csrf_of(page: str) -> str:
    return page.split('<meta name="csrf" content="')[1].split('"', maxsplit=1)[0]


def client(redis_url: str, **config: Any) -> TestClient:
    app = create_app(Config(redis_url=redis_url, cluster=False, **config))
    return TestClient(app, base_url="http://dash.test")


def test_actions_without_token_or_read_only_are_refused_at_start(redis_url: str) -> None:
    with pytest.raises(ValueError, match=r"KUBEQ_DASHBOARD_TOKEN.*--read-only.*--no-token"):
        create_app(Config(redis_url=redis_url, cluster=False))


def test_token_login_csrf_and_origin(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    app.queue("q").enqueue("t.x", 1)
    with client(redis_url, token="tok") as c:
        page = c.get("/queues/q").text
        assert 'id="pause"' not in page  # not logged in: no buttons
        csrf = csrf_of(page)
        assert c.post("/queues/q/pause", data={"csrf": csrf}).status_code == 401
        assert c.post("/login", data={"csrf": csrf, "token": "wrong"}).status_code == 401
        assert c.post("/login", data={"csrf": "forged", "token": "tok"}).status_code == 403
        r = c.post("/login", data={"csrf": csrf, "token": "tok"}, follow_redirects=False)
        assert r.status_code == 303
        page = c.get("/queues/q").text
        assert 'id="pause"' in page
        stale, csrf = csrf, csrf_of(page)  # the login issued a new session, so a new token
        assert stale != csrf and c.post("/queues/q/pause", data={"csrf": stale}).status_code == 403
        assert c.post("/queues/q/pause", data={}).status_code == 403  # no CSRF token
        evil = {"origin": "http://evil.example"}
        assert c.post("/queues/q/pause", data={"csrf": csrf}, headers=evil).status_code == 403
        assert not app.queue("q").is_paused()
        r = c.post("/queues/q/pause", data={"csrf": csrf}, headers={"origin": "http://dash.test"})
        assert r.status_code == 200 and "paused" in r.text
        assert app.queue("q").is_paused()
        # purge needs the queue's name typed in
        c.post("/queues/q/purge", data={"csrf": csrf, "confirm": "nope"})
        assert app.queue("q").stats().backlog == 1
        c.post("/queues/q/purge", data={"csrf": csrf, "confirm": "q"})
        assert app.queue("q").stats().backlog == 0


def test_read_only_refuses_every_action(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    job = app.queue("q").enqueue("t.x", 1)
    with client(redis_url, read_only=True) as c:
        page = c.get(f"/jobs/q/{job.id}").text
        assert 'method="post"' not in page
        csrf = csrf_of(c.get("/").text)  # the page still has a session: try a valid token
        for path in ["/queues/q/pause", "/queues/q/purge", f"/jobs/q/{job.id}/cancel"]:
            assert c.post(path, data={"csrf": csrf, "confirm": "q"}).status_code == 403, path
        assert job.status() == "queued"
        assert not app.queue("q").is_paused()


def test_password_never_shown(redis_server: Any, redis_url: str) -> None:
    url = redis_url.replace("redis://", "redis://:hunter2@")
    r = redis.Redis.from_url(redis_url)
    r.config_set("requirepass", "hunter2")
    try:
        with client(url, read_only=True) as c:
            for path in ["/", "/workers", "/dead", "/scaling", "/jobs"]:
                body = c.get(path).text
                assert "hunter2" not in body, path
            assert "***" in c.get("/").text
    finally:
        redis.Redis.from_url(url).config_set("requirepass", "")


def test_waiting_jobs_in_fetch_order_and_paged(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    q = app.queue("q")
    low = [q.enqueue_call("t.low", (i,), priority=1) for i in range(60)]
    high = q.enqueue_call("t.high", (0,), priority=9)
    with client(redis_url, read_only=True) as c:
        first = c.get("/queues/q").text
        assert first.index(high.id) < first.index(low[0].id) < first.index(low[48].id)
        assert low[49].id not in first  # 50 a page: high + low[0..48]
        second = c.get("/queues/q?page=1").text
        assert low[49].id in second and low[59].id in second and high.id not in second


def test_dead_letter_filter_and_requeue_all_matching(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    r = app.redis
    keys = app.queue("q").keys
    # dead letters written the way dead.lua leaves them (status failed, in the dead ZSET)
    for i in range(30):
        task = "t.a" if i % 3 else "t.b"
        jid = f"job-{i}"
        r.hset(
            keys.job(jid),
            mapping={
                "status": "failed",
                "payload": kubeq.serialization.encode_call(task, [i], {}, {}),
                "reason": "failed 3 of 3 attempts",
                "error": "KeyError: 'sku'" if i % 2 else "TimeoutError",
                "priority": 5,
                "attempts": 3,
            },
        )
        r.zadd(keys.dead, {jid: 1000 + i})
    with TestClient(
        create_app(Config(redis_url=redis_url, cluster=False, trust_proxy=True)),
        base_url="http://dash.test",
    ) as c:
        page = c.get("/dead?queue=q&task=t.b&reason=timeout").text
        shown = {f"job-{i}" for i in range(30) if f">job-{i}<" in page}
        assert shown == {f"job-{i}" for i in range(30) if i % 3 == 0 and i % 2 == 0}
        csrf = csrf_of(page)
        c.post(
            "/dead/q/requeue",
            data={"csrf": csrf, "scope": "all", "task": "t.b", "reason": "timeout"},
        )
    assert app.queue("q").stats().dead == 30 - len(shown)
    assert {m.decode() for m in r.zrange(keys.ready, 0, -1)} == shown


def test_hub_polls_once_for_any_number_of_viewers(redis_url: str) -> None:
    kubeq.App(redis_url).queue("q").enqueue("t.x", 1)
    sync = redis.Redis.from_url(redis_url)

    async def run(viewers: int, messages: int) -> tuple[int, int, list[int]]:
        client_ = async_client(redis_url)
        hub = Hub(client_, interval=0.05)
        before = sync.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)

        async def view() -> int:
            got = 0
            async for _ in hub.subscribe(View(queues=("q",))):
                got += 1
                if got == messages:
                    return got
            return got

        counts = await asyncio.gather(*(view() for _ in range(viewers)))
        await hub.close()
        await client_.aclose()
        after = sync.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        return hub.polls, after - before, list(counts)

    polls, scripts, counts = asyncio.run(run(50, 5))
    assert counts == [5] * 50
    # every viewer saw the same few polls; one stats script per poll (one queue), not per viewer
    assert polls <= 6
    assert scripts == polls


def test_workerinfo_round_trip_and_expiry(redis_url: str) -> None:
    doc = worker_info.snapshot(
        worker_id="pod-a:1:abc",
        queues=["q"],
        concurrency=3,
        pool="thread",
        started_at=1.0,
        counts={"q": {"finished": 2}},
    )
    assert doc["rss_bytes"] > 0 and doc["cpu_seconds"] >= 0 and doc["pid"] > 0

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        c = async_client(redis_url)
        await workerinfo.publish(c, "kubeq", "pod-a:1:abc", doc, ttl_ms=300)
        live = await workerinfo.read_all(c)
        await asyncio.sleep(0.5)
        gone = await workerinfo.read_all(c)
        await c.aclose()
        return live, gone

    live, gone = asyncio.run(run())
    assert [d["id"] for d in live] == ["pod-a:1:abc"]
    assert live[0]["counts"] == {"q": {"finished": 2}}
    assert gone == []


def test_cli_refuses_actions_without_a_token() -> None:
    from click.testing import CliRunner

    from kubeq.cli.commands import cli

    result = CliRunner().invoke(cli, ["dashboard"], env={"KUBEQ_DASHBOARD_TOKEN": ""})
    assert result.exit_code == 2
    assert "set KUBEQ_DASHBOARD_TOKEN, or pass --read-only" in result.output


def test_rates_count_what_workers_settled_between_polls() -> None:
    from kubeq.dashboard.hub import Rates

    rates = Rates()
    w = {"id": "a", "counts": {"q": {"finished": 10, "failed": 1}}}
    assert rates.update([w]) == {}  # the first poll is a baseline
    w["counts"] = {"q": {"finished": 15, "failed": 1}}
    newcomer = {"id": "b", "counts": {"q": {"finished": 2}}}  # started after the first poll
    assert rates.update([w, newcomer]) == {"q": {"finished": 7}}
    restarted = {"id": "a", "counts": {"q": {"finished": 3, "failed": 2}}}  # counter went down
    assert rates.update([restarted, newcomer]) == {"q": {"finished": 3, "failed": 1}}
