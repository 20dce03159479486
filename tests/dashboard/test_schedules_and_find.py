"""The dashboard's Schedules and Find pages against a real Redis (Starlette's TestClient): each
schedule's next and last run in its time zone, paging, and the guarded pause / resume /
trigger actions; and the job filter by status, task and age."""

from __future__ import annotations

from starlette.testclient import TestClient

import kubeq
from kubeq.dashboard import Config, create_app
from kubeq.dashboard.schedules import PAGE
from kubeq.store.keys import schedule_key


def client(redis_url: str, **config: object) -> TestClient:
    app = create_app(Config(redis_url=redis_url, cluster=False, **config))  # type: ignore[arg-type]
    return TestClient(app, base_url="http://dash.test")


def csrf_of(page: str) -> str:
    return page.split('<meta name="csrf" content="')[1].split('"', maxsplit=1)[0]


def test_next_and_last_runs_in_each_time_zone_and_actions(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    st = app.schedules.upsert(
        "digest-42", "mail.digest", cron="0 9 * * 1", timezone="Europe/Berlin", queue="mail"
    )
    app.redis.hset(
        schedule_key("digest-42"),
        mapping={"last": st.next_due - 7 * 86400, "last_job": "schedule-digest-42-1"},
    )
    with client(redis_url, token="tok") as c:
        page = c.get("/schedules").text
        row = page.split('id="schedule-digest-42"')[1].split("</tr>")[0]
        assert "T09:00:00+0" in row.split('class="next">')[1].split("</td>")[0]
        assert "T09:00:00+0" in row.split('class="last">')[1]
        assert "/jobs/mail/schedule-digest-42-1" in row and "Europe/Berlin" in row
        assert 'id="pause-digest-42"' not in page  # not logged in: no buttons
        csrf = csrf_of(page)
        assert c.post("/schedules/digest-42/pause", data={"csrf": csrf}).status_code == 401
        c.post("/login", data={"csrf": csrf, "token": "tok"})
        page = c.get("/schedules").text
        csrf = csrf_of(page)
        r = c.post("/schedules/digest-42/pause", data={"csrf": csrf})
        assert r.status_code == 200 and "schedule digest-42 paused" in r.text
        assert app.schedules.get("digest-42").paused  # type: ignore[union-attr]
        assert 'id="resume-digest-42"' in r.text
        c.post("/schedules/digest-42/resume", data={"csrf": csrf})
        assert not app.schedules.get("digest-42").paused  # type: ignore[union-attr]
        r = c.post("/schedules/digest-42/trigger", data={"csrf": csrf})
        assert "enqueued schedule-digest-42-manual-" in r.text
        assert app.queue("mail").stats().backlog == 1
        assert c.post("/schedules/digest-42/explode", data={"csrf": csrf}).status_code == 400
    app.close()


def test_pages_by_id(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    for i in range(PAGE + 5):
        app.schedules.upsert(f"s{i:04}", "t.x", every=3600)
    with client(redis_url, read_only=True) as c:
        first = c.get("/schedules").text
        assert 's0000"' in first and f"s{PAGE - 1:04}" in first and f"s{PAGE:04}" not in first
        second = c.get(f"/schedules?after=s{PAGE - 1:04}").text
        assert f"s{PAGE:04}" in second and "s0000" not in second
        assert c.get("/schedules?after=a%20b").status_code == 400
    app.close()


def test_find_jobs_by_status_task_and_age(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    q = app.queue("fq")
    mail = [q.enqueue_call("t.mail", (i,)) for i in range(3)]
    q.enqueue_call("t.pay", (1,))
    with client(redis_url, read_only=True) as c:
        assert 'id="find-queue"' in c.get("/find").text
        page = c.get("/find?queue=fq&status=queued&task=t.mail&since=1h").text
        assert all(f"/jobs/fq/{j.id}" in page for j in mail) and "t.pay" not in page
        assert 'id="none-found"' in c.get("/find?queue=fq&status=failed").text
        assert c.get("/find?queue=fq&status=gone").status_code == 400
        assert c.get("/find?queue=a%7Bb%7D&status=queued").status_code == 400
    app.close()


def test_find_jobs_by_tags_in_any_status(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    q = app.queue("ftags")
    vip = q.enqueue_call("t.mail", (1,), tags=["vip", "customer:42"])
    q.enqueue_call("t.mail", (2,), tags=["customer:7"])
    app.job(vip.id, "ftags").cancel()
    with client(redis_url, read_only=True) as c:
        page = c.get("/find?queue=ftags&status=any&tags=customer:42").text
        assert f"/jobs/ftags/{vip.id}" in page and "customer:7" not in page
        assert "vip customer:42" in page and "cancelled" in page
        assert f"/jobs/ftags/{vip.id}" in c.get("/find?queue=ftags&status=cancelled").text
        none = c.get("/find?queue=ftags&status=any&tags=vip,customer:7").text
        assert 'id="none-found"' in none
        bad = c.get("/find?queue=ftags&status=any&tags=a%7Bb")
        assert bad.status_code == 400 and "is not a tag" in bad.text
    app.close()
