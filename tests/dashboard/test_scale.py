"""What the dashboard costs follows what is on screen, not what was ever registered: the
overview is paged, its size does not grow with registered names, names whose queue holds
nothing are left off (and their history dropped), the poll reads only the queues a page
shows, and the chart history is capped. Real Redis, in process (Starlette's TestClient)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

import kubeq
from kubeq import defaults
from kubeq.dashboard import Config, create_app
from kubeq.dashboard.hub import Hub, View
from kubeq.store.connections import async_client
from kubeq.store.keys import QueueKeys, queues_key

PAGE = defaults.DASHBOARD_QUEUES_PAGE


def live_queues(redis_url: str, n: int, start: int = 0) -> list[str]:
    """``n`` queues holding one waiting job each, named so that they sort in order."""
    app = kubeq.App(redis_url)
    names = [f"live-{i:05d}" for i in range(start, start + n)]
    for name in names:
        app.queue(name).enqueue("t.x", 1)
    return names


def register_empty(r: redis.Redis, n: int) -> list[str]:
    """``n`` registered names whose queues hold nothing (like the leftovers of old tests)."""
    names = [f"empty-{i:05d}" for i in range(n)]
    r.sadd(queues_key(), *names)
    return names


HISTORY = '<script type="application/json" id="history">'


def without_history(page: str) -> str:
    head, rest = page.split(HISTORY)
    return head + rest.split("</script>", 1)[1]


def rows(page: str) -> list[str]:
    return re.findall(r'<tr data-row="([^"]+)">', page)


def overview_client(redis_url: str) -> TestClient:
    app = create_app(Config(redis_url=redis_url, cluster=False, read_only=True))
    return TestClient(app, base_url="http://dash.test")


def test_the_overview_is_paged_and_lists_only_queues_that_hold_something(
    redis_url: str,
) -> None:
    r = redis.Redis.from_url(redis_url)
    live = live_queues(redis_url, 2 * PAGE + 7)
    empty = register_empty(r, 300)
    seen: list[str] = []
    with overview_client(redis_url) as c:
        page = c.get("/").text
        pages = 1
        while True:
            shown = rows(page)
            assert 0 < len(shown) <= PAGE
            assert not set(shown) & set(empty)
            seen += shown
            nxt = re.search(r'id="next" href="([^"]+)"', page)
            if not nxt:
                break
            page = c.get(nxt.group(1).replace("&amp;", "&")).text
            pages += 1
        assert seen == live and pages == 3
        back = re.search(r'id="prev" href="([^"]+)"', page)
        assert back is not None
        assert rows(c.get(back.group(1).replace("&amp;", "&")).text) == live[PAGE : 2 * PAGE]
        assert f"{len(live) + len(empty)} names registered" in page


def test_the_overview_size_does_not_grow_with_names_ever_registered(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    live_queues(redis_url, PAGE + 5)
    with overview_client(redis_url) as c:
        before = without_history(c.get("/").text)
        register_empty(r, 3000)
        live_queues(redis_url, 500, start=1000)  # sorted after the first page
        after = c.get("/").text
        assert rows(after) == [f"live-{i:05d}" for i in range(PAGE)]
        assert abs(len(without_history(after)) - len(before)) < 20  # "N names registered"
        # the history embedded is that of the page's queues, one point per poll so far
        history = json.loads(after.split(HISTORY)[1].split("</script>")[0])
        assert sorted(history) == [f"live-{i:05d}" for i in range(PAGE)]
        polls = c.app.state.dash.hub.polls  # type: ignore[attr-defined]
        assert all(1 <= len(points) <= polls for points in history.values())


def test_a_queue_that_no_longer_holds_anything_is_pruned(redis_url: str) -> None:
    names = live_queues(redis_url, 3)
    r = redis.Redis.from_url(redis_url)
    with overview_client(redis_url) as c:
        assert rows(c.get("/").text) == names
        hub = c.app.state.dash.hub  # type: ignore[attr-defined]
        assert set(hub.history) == set(names)
        keys = QueueKeys.of(names[1])
        r.delete(keys.ready, keys.job(r.zrange(keys.ready, 0, 0)[0].decode()))
        assert rows(c.get("/").text) == [names[0], names[2]]
        assert set(hub.history) == {names[0], names[2]}
        live_queues(redis_url, 1, start=1)  # it holds a job again
        hub.directory.recheck_seconds = 0  # (instead of waiting a minute)
        assert rows(c.get("/").text) == names


def calls(r: redis.Redis, command: str) -> int:
    stats = r.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def test_the_poll_reads_the_queues_on_screen_only(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    names = live_queues(redis_url, 40)
    register_empty(r, 500)

    async def run() -> tuple[int, int]:
        client = async_client(redis_url)
        hub = Hub(client, interval=0.05)
        before = calls(r, "evalsha")
        got = 0
        async for _ in hub.subscribe(View(queues=tuple(names[:7]))):
            got += 1
            if got == 4:
                break
        await hub.close()
        await client.aclose()
        return hub.polls, calls(r, "evalsha") - before

    polls, scripts = asyncio.run(run())
    # one stats script per queue on screen and poll (a poll cut short by close may have run
    # its scripts without being counted), never one per registered name
    assert scripts % 7 == 0 and 7 * polls <= scripts <= 7 * (polls + 1), (polls, scripts)


def test_events_refuse_more_queues_than_a_page_shows(redis_url: str) -> None:
    with overview_client(redis_url) as c:
        query = "&".join(f"q=q{i}" for i in range(PAGE + 1))
        r = c.get(f"/events?{query}")
        assert r.status_code == 400 and f"at most {PAGE}" in r.text
        assert c.get("/events?q=bad%7Bname").status_code == 400


@pytest.mark.parametrize("cap", [60])
def test_chart_history_is_kept_for_the_most_recently_shown_queues_only(
    redis_url: str, cap: int
) -> None:
    names = live_queues(redis_url, 3 * PAGE)

    async def run() -> list[str]:
        client = async_client(redis_url)
        hub = Hub(client, interval=0.01, history_queues=cap)
        for start in range(0, len(names), PAGE):
            await hub.refresh(View(queues=tuple(names[start : start + PAGE])))
        kept = list(hub.history)
        await client.aclose()
        return kept

    kept = asyncio.run(run())
    assert kept == names[-cap:]


def test_the_cluster_and_the_workers_jobs_are_read_only_for_pages_that_show_them(
    redis_url: str,
) -> None:
    reads: list[int] = []

    async def cluster() -> dict[str, Any]:
        reads.append(1)
        tq = {"namespace": "ns", "name": "tq", "desired": 2, "current": 1}
        return {"taskqueues": [{**tq, "backlog": 5, "in_flight": 1}]}

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        client = async_client(redis_url)
        hub = Hub(client, interval=0.01, cluster=cluster)
        overview = await hub.refresh(View(queues=("q",)))
        assert not reads
        await asyncio.sleep(0.02)
        scaling = await hub.refresh(View(cluster=True))
        await client.aclose()
        return overview, scaling

    overview, scaling = asyncio.run(run())
    assert len(reads) == 1
    assert "cluster" not in overview and "workers" not in overview
    assert scaling["cluster"]["taskqueues"][0]["desired"] == 2
