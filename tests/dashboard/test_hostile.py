"""The dashboard against a hostile but fair user, in process (Starlette's TestClient) on a real
Redis: a session id planted before login, a malformed worker document, partition names in
links, and a token guessed again and again."""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis
from starlette.testclient import TestClient

import kubeq
from kubeq.dashboard import Config, create_app
from kubeq.dashboard.security import SESSION_COOKIE
from kubeq.store.keys import worker_index_key, worker_info_key
from kubeq.worker import info as worker_info
from tests.dashboard.test_server import csrf_of

PAGES = ["/", "/workers", "/queues/q", "/dead?queue=q", "/scaling", "/jobs"]


def app_of(redis_url: str, **config: Any) -> Any:
    return create_app(Config(redis_url=redis_url, cluster=False, **config))


def test_a_login_issues_a_new_session_so_a_planted_one_gains_nothing(redis_url: str) -> None:
    kubeq.App(redis_url).queue("q").enqueue("t.x", 1)
    app = app_of(redis_url, token="tok")
    planted = "P" * 43  # a well-formed id the attacker chose and gave the victim's browser
    victim = TestClient(app, base_url="http://dash.test", cookies={SESSION_COOKIE: planted})
    csrf = csrf_of(victim.get("/login").text)
    r = victim.post("/login", data={"csrf": csrf, "token": "tok"}, follow_redirects=False)
    assert r.status_code == 303
    issued = r.cookies.get(SESSION_COOKIE)
    assert issued and issued != planted, r.headers
    assert 'id="pause"' in victim.get("/queues/q").text  # the victim is logged in
    attacker = TestClient(app, base_url="http://dash.test", cookies={SESSION_COOKIE: planted})
    page = attacker.get("/queues/q").text
    assert 'id="pause"' not in page
    r = attacker.post("/queues/q/pause", data={"csrf": csrf_of(page)})
    assert r.status_code == 401
    assert not kubeq.App(redis_url).queue("q").is_paused()


def test_a_malformed_worker_document_is_flagged_and_breaks_no_page(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    kubeq.App(redis_url).queue("q").enqueue("t.x", 1)
    good = worker_info.snapshot(
        worker_id="good-worker", queues=["q"], concurrency=2, pool="thread", started_at=1.0
    )
    docs: dict[str, Any] = {
        "good-worker": good,
        "bad-types": {"id": "bad-types", "jobs": "x", "counts": {"q": 5}, "queues": 7, "at": "?"},
        "bad-job": {"id": "bad-job", "jobs": [{"id": "j"}, 3], "counts": {"q": {"finished": "x"}}},
        "not-a-dict": [1, 2],
    }
    for wid, doc in docs.items():
        r.set(worker_info_key(wid), orjson.dumps(doc), px=60_000)
        r.zadd(worker_index_key(), {wid: int(time.time() * 1000)})
    with TestClient(app_of(redis_url, read_only=True), base_url="http://dash.test") as c:
        for path in PAGES:
            assert c.get(path).status_code == 200, path
        page = c.get("/workers").text
    assert "good-worker" in page
    assert "malformed: at, counts, host, jobs, pod, pool, queues" in page  # bad-types
    assert "malformed: counts, host, jobs, pod, pool, queues" in page  # bad-job


def test_links_to_partitions_quote_the_hash(redis_url: str) -> None:
    app = kubeq.App(redis_url, partitions={"pq": 2})
    job = app.queue("pq").enqueue("t.x", 1)
    part = job.queue
    assert part.startswith("pq#")
    quoted = part.replace("#", "%23")
    with TestClient(app_of(redis_url, trust_proxy=True), base_url="http://dash.test") as c:
        overview = c.get("/").text
        assert f'href="/queues/{quoted}"' in overview and f'href="/queues/{part}"' not in overview
        queue_page = c.get(f"/queues/{quoted}")
        assert queue_page.status_code == 200 and f"Queue {part}" in queue_page.text
        assert f'href="/jobs/{quoted}/{job.id}"' in queue_page.text
        assert c.get(f"/jobs/{quoted}/{job.id}").status_code == 200
        found = c.get(f"/jobs?id={job.id}", follow_redirects=False)
        assert found.headers["location"] == f"/jobs/{quoted}/{job.id}"
        csrf = csrf_of(queue_page.text)
        done = c.post(f"/queues/{quoted}/pause", data={"csrf": csrf}, follow_redirects=False)
        assert done.headers["location"].startswith(f"/queues/{quoted}?")
        assert c.get(done.headers["location"]).status_code == 200
    assert app.queue("pq").is_paused() or kubeq.App(redis_url).queue(part).is_paused()


def test_failed_logins_are_throttled_per_client(redis_url: str) -> None:
    app = app_of(redis_url, token="tok")
    guesser = TestClient(app, base_url="http://dash.test", client=("203.0.113.7", 4000))
    csrf = csrf_of(guesser.get("/login").text)
    codes = [
        guesser.post("/login", data={"csrf": csrf, "token": f"guess-{i}"}).status_code
        for i in range(5)
    ]
    assert codes == [401] * 5
    refused = guesser.post("/login", data={"csrf": csrf, "token": "tok"})
    assert refused.status_code == 429
    assert "too many failed logins" in refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert 'id="pause"' not in guesser.get("/queues/q").text  # the right token did not count
    other = TestClient(app, base_url="http://dash.test", client=("198.51.100.2", 4000))
    csrf = csrf_of(other.get("/login").text)
    ok = other.post("/login", data={"csrf": csrf, "token": "tok"}, follow_redirects=False)
    assert ok.status_code == 303  # another client is not locked out
