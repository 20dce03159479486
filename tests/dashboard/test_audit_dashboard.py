"""Dashboard actions leave audit entries that name who pressed the button: with the action
token, ``dashboard-token@<client>``; behind an auth proxy, the user the proxy names. Pause,
resume, purge, one job's cancel and abort, a dead letter's requeue and a schedule's pause,
against a real Redis (Starlette's TestClient)."""

from __future__ import annotations

from starlette.testclient import TestClient

import kubeq
from kubeq.dashboard import Config, create_app
from kubeq.store import audit
from kubeq.store.keys import QueueKeys


def _csrf(page: str) -> str:
    return page.split('<meta name="csrf" content="')[1].split('"', maxsplit=1)[0]


def _entries(app: kubeq.App) -> list[tuple[str, str, int, str, str, str]]:
    return [
        (e.action, e.target, e.count, e.queue, e.who, e.via)
        for e in audit.read(app.redis, app.prefix, 50)
    ]


def test_token_actions_are_audited_with_the_token_identity(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    q = app.queue("dq")
    jobs = [q.enqueue_call("t.mail", (i,)) for i in range(4)]
    dead = q.enqueue_call("t.mail", (9,))
    keys = QueueKeys.of("dq", app.prefix)  # a dead letter, as dead.lua leaves one
    app.redis.zrem(keys.ready, dead.id)
    app.redis.hset(keys.job(dead.id), mapping={"status": "failed", "finished_at": 1})
    app.redis.zadd(keys.dead, {dead.id: 1})
    app.schedules.upsert("nightly", "t.mail", every=3600, queue="dq")
    dash = create_app(Config(redis_url=redis_url, cluster=False, token="tok"))  # type: ignore[arg-type]
    with TestClient(dash, base_url="http://dash.test") as c:
        csrf = _csrf(c.get("/login").text)
        c.post("/login", data={"csrf": csrf, "token": "tok"})
        csrf = _csrf(c.get("/").text)
        for path in (
            "/queues/dq/pause",
            "/queues/dq/resume",
            f"/jobs/dq/{jobs[0].id}/cancel",
            f"/jobs/dq/{jobs[1].id}/abort",
            f"/jobs/dq/{dead.id}/requeue",
            "/schedules/nightly/pause",
        ):
            assert c.post(path, data={"csrf": csrf}).status_code == 200, path
        c.post("/queues/dq/purge", data={"csrf": csrf, "confirm": "dq"})
        page = c.get(f"/jobs/dq/{jobs[1].id}").text
        audit_page = c.get("/audit").text
        only_jobs = c.get("/audit?action=job.&who=TOKEN").text
        nothing = c.get("/audit?queue=elsewhere").text
    who = "dashboard-token@testclient"
    assert _entries(app) == [
        ("queue.purge", "dq", 3, "dq", who, "dashboard"),
        ("schedule.pause", "nightly", 1, "", who, "dashboard"),
        ("dlq.requeue", dead.id, 1, "dq", who, "dashboard"),
        ("job.abort", jobs[1].id, 1, "dq", who, "dashboard"),
        ("job.cancel", jobs[0].id, 1, "dq", who, "dashboard"),
        ("queue.resume", "dq", 4, "dq", who, "dashboard"),
        ("queue.pause", "dq", 4, "dq", who, "dashboard"),
    ]
    assert "aborted" in page
    rows = audit_page.split('id="audit"')[1].split("<tr>")[2:]
    assert len(rows) == 7 and "queue.purge" in rows[0] and who in rows[0] and "dashboard" in rows[0]
    assert f'href="/jobs/dq/{jobs[1].id}"' in audit_page  # a job's entry links the job
    assert only_jobs.count("<td>job.") == 2 and "<td>queue.pause" not in only_jobs
    assert 'id="no-audit"' in nothing
    app.close()


def test_behind_an_auth_proxy_the_proxys_user_is_named(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    job = app.queue("pq").enqueue_call("t.mail", (1,))
    dash = create_app(Config(redis_url=redis_url, cluster=False, trust_proxy=True))  # type: ignore[arg-type]
    with TestClient(dash, base_url="http://dash.test") as c:
        csrf = _csrf(c.get("/").text)
        r = c.post(
            f"/jobs/pq/{job.id}/cancel",
            data={"csrf": csrf},
            headers={"X-Forwarded-User": "carol@example.com"},
        )
        assert r.status_code == 200
    (entry,) = audit.read(app.redis, app.prefix)
    assert (entry.action, entry.who, entry.via) == (
        "job.cancel",
        "carol@example.com@testclient",
        "dashboard",
    )
    app.close()


def test_find_acts_on_what_the_filter_matches_once_the_count_is_typed(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    q = app.queue("fb")
    mail = [q.enqueue_call("t.mail", (i,), tags=["wave"]) for i in range(3)]
    other = q.enqueue_call("t.pay", (1,), tags=["wave"])
    dash = create_app(Config(redis_url=redis_url, cluster=False, token="tok"))  # type: ignore[arg-type]
    with TestClient(dash, base_url="http://dash.test") as c:
        csrf = _csrf(c.get("/login").text)
        c.post("/login", data={"csrf": csrf, "token": "tok"})
        page = c.get("/find?queue=fb&status=queued&task=t.mail&tags=wave").text
        assert 'id="bulk-cancel"' in page and "Cancel these 3 jobs" in page
        assert 'id="bulk-requeue"' not in page  # requeue is for dead letters
        filt = {"queue": "fb", "status": "queued", "task": "t.mail", "tags": "wave", "since": ""}
        wrong = c.post("/find/cancel", data={"csrf": _csrf(page), **filt, "confirm": "4"})
        assert "not done: 3 jobs match now" in wrong.text and q.stats().backlog == 4
        done = c.post("/find/cancel", data={"csrf": _csrf(page), **filt, "confirm": "3"})
        assert "cancelled 3 of 3 jobs" in done.text
    assert [j.info().status for j in mail] == ["cancelled"] * 3
    assert other.info().status == "queued"
    (entry,) = audit.read(app.redis, app.prefix)
    assert (entry.action, entry.count, entry.queue, entry.via) == (
        "jobs.cancel",
        3,
        "fb",
        "dashboard",
    )
    assert entry.target == "queue=fb status=queued task=t.mail tags=wave"
    app.close()
