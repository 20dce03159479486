"""The Job page shows a sleeping job's wait and its recorded steps, and offers to cancel it
(a real worker, in process, runs the job until it waits; docs/durable.md)."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

import kubeq
from kubeq.dashboard import Config, create_app
from kubeq.testing import drain


def test_the_job_page_shows_a_wait_and_its_steps(redis_url: str) -> None:
    app = kubeq.App(redis_url)

    @app.task(name="durable.page.waits")
    def waits() -> Any:
        kubeq.step("ask", lambda: {"asked": "ann"})
        return kubeq.wait_for("approval:7", timeout=3600)

    job = waits.delay()
    drain(app)
    assert job.status() == "sleeping"
    dashboard = create_app(Config(redis_url=redis_url, cluster=False, read_only=True))
    with TestClient(dashboard, base_url="http://dash.test") as c:
        page = c.get(f"/jobs/default/{job.id}").text
    assert 'id="sleeping"' in page and "signal approval:7" in page and " until " in page
    assert "step ask" in page and "&#34;asked&#34;" in page
    assert app.signal("approval:7", "yes") == 1
    drain(app)
    assert job.result(timeout=5) == "yes"


def test_a_queue_whose_jobs_all_wait_stays_on_the_overview(redis_url: str) -> None:
    app = kubeq.App(redis_url)

    @app.task(name="durable.page.untimed", queue="approvals")
    def untimed() -> Any:
        return kubeq.wait_for("approval:8")  # no timeout: in no set but the sleeping index

    job = untimed.delay()
    drain(app)
    assert job.status() == "sleeping"
    dashboard = create_app(Config(redis_url=redis_url, cluster=False, read_only=True))
    with TestClient(dashboard, base_url="http://dash.test") as c:
        page = c.get("/").text
    assert "/queues/approvals" in page


def _csrf(page: str) -> str:
    return page.split('<meta name="csrf" content="')[1].split('"', maxsplit=1)[0]


def test_a_logged_in_user_signals_a_waiting_job_from_its_page(redis_url: str) -> None:
    app = kubeq.App(redis_url)

    @app.task(name="durable.page.approve")
    def approve() -> Any:
        return kubeq.wait_for("approval:9")

    job = approve.delay()
    drain(app)
    dashboard = create_app(Config(redis_url=redis_url, cluster=False, token="tok"))
    path = f"/jobs/default/{job.id}"
    with TestClient(dashboard, base_url="http://dash.test") as c:
        anonymous = c.get(path).text
        assert 'id="signal"' not in anonymous  # no token: no button, and the POST is refused
        assert c.post(f"{path}/signal", data={"csrf": _csrf(anonymous)}).status_code == 401
        c.post("/login", data={"csrf": _csrf(anonymous), "token": "tok"})
        page = c.get(path).text
        assert 'id="signal"' in page and "Signal approval:9" in page
        bad = c.post(f"{path}/signal", data={"csrf": _csrf(page), "data": "{nope"})
        assert "payload is not JSON" in bad.text and job.status() == "sleeping"
        done = c.post(f"{path}/signal", data={"csrf": _csrf(page), "data": '{"by": "ann"}'})
        assert "signal approval:9: woke 1 job" in done.text
    drain(app)
    assert job.result(timeout=5) == {"by": "ann"}


def test_sleeping_jobs_are_counted_on_the_overview_and_listed_on_their_queue_page(
    redis_url: str,
) -> None:
    app = kubeq.App(redis_url)

    @app.task(name="durable.page.nap", queue="naps")
    def nap(seconds: float) -> None:
        kubeq.sleep(seconds)

    @app.task(name="durable.page.hold", queue="naps")
    def hold(key: str, timeout: float | None) -> Any:
        return kubeq.wait_for(key, timeout=timeout)

    jobs = [hold.delay("k:forever", None), hold.delay("k:day", 86_400), nap.delay(3600)]
    drain(app)
    assert [j.status() for j in jobs] == ["sleeping"] * 3
    dashboard = create_app(Config(redis_url=redis_url, cluster=False, read_only=True))
    with TestClient(dashboard, base_url="http://dash.test") as c:
        overview = c.get("/").text
        page = c.get("/queues/naps").text
    assert "<th" in overview and ">sleeping</th>" in overview
    assert 'data-q="naps" data-k="sleeping">3</td>' in overview
    assert 'data-q="naps" data-k="backlog">0</td>' in overview
    assert 'sleeping <b data-q="naps" data-k="sleeping">3</b>' in page
    listed = page.split('<table class="grid" id="sleeping">')[1].split("</table>")[0]
    rows = listed.split("<tr>")[2:]  # after the header
    order = [next(j.id for j in jobs if j.id in row) for row in rows]
    assert order == [jobs[2].id, jobs[1].id, jobs[0].id]  # the soonest to wake first
    assert "~sleep:1: sleeping" in rows[0] and " UTC" in rows[0]
    assert "waiting for signal k:day" in rows[1] and " UTC" in rows[1]
    assert "waiting for signal k:forever" in rows[2] and "on a signal" in rows[2]
