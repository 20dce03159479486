"""The dashboard in a real browser (headless Chromium) against real workers and Redis.

What a user sees: the overview's backlog falls while a worker drains the queue (without a
reload), a failed job's traceback is found by its id, a dead letter requeued from the page
runs, a read-only dashboard has no action buttons, and an ``<img onerror>`` argument is text.
Each test saves a screenshot of the page it checks under .artifacts/dashboard/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import redis
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import kubeq
from kubeq.errors import JobFailed

StartDashboard = Callable[..., str]
StartWorker = Callable[..., Any]

XSS = "<img src=x onerror=window.__xss=1>"


def wait(browser: Any, predicate: Callable[[Any], Any], timeout: float = 60) -> Any:
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(predicate)


def text(browser: Any, css: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def dead_job(app: kubeq.App, task: str, *args: Any, queue: str = "default") -> kubeq.Job:
    job = app.queue(queue).enqueue(task, *args)
    try:
        job.result(timeout=60)
    except JobFailed:
        return job
    raise AssertionError(f"{task} was expected to fail")


def test_overview_backlog_falls_as_a_worker_drains(
    redis_url: str,
    start_dashboard: StartDashboard,
    start_worker: StartWorker,
    browser: Any,
    shot: Callable[[str], Path],
) -> None:
    app = kubeq.App(redis_url)
    app.queue("drain").enqueue_many(app.queue("drain").prepare("dtasks.slow", i) for i in range(60))
    base = start_dashboard("--read-only")
    browser.get(base + "/")
    cell = '[data-q="drain"][data-k="backlog"]'
    assert text(browser, cell) == "60"
    browser.execute_script("window.__sameDocument = true")
    start_worker("--queue", "drain", "--concurrency", "2")
    seen: list[int] = []

    def sample(b: Any) -> bool:
        value = int(text(b, cell))
        if not seen or seen[-1] != value:
            seen.append(value)
        return 0 < value < 60 and len(seen) >= 3

    wait(browser, sample)
    shot("overview")
    wait(browser, lambda b: text(b, cell) == "0", timeout=120)
    assert seen == sorted(seen, reverse=True), f"backlog went up while draining: {seen}"
    # the numbers arrived live: the page was never reloaded
    assert browser.execute_script("return window.__sameDocument") is True
    assert browser.find_elements(By.CSS_SELECTOR, 'svg[data-spark="drain"] polyline')


def test_failed_job_traceback_found_by_id_and_html_is_text(
    redis_url: str,
    start_dashboard: StartDashboard,
    start_worker: StartWorker,
    browser: Any,
    shot: Callable[[str], Path],
) -> None:
    start_worker("--queue", "default")
    app = kubeq.App(redis_url)
    job = dead_job(app, "dtasks.explode", XSS)
    base = start_dashboard("--read-only")
    browser.get(base + "/")
    box = browser.find_element(By.CSS_SELECTOR, "header input[name=id]")
    box.send_keys(job.id + "\n")
    wait(browser, lambda b: b.find_elements(By.ID, "traceback"))
    assert job.id in browser.current_url
    assert "RuntimeError: exploded on" in text(browser, "#traceback")
    assert "Traceback (most recent call last)" in text(browser, "#traceback")
    assert text(browser, "#status") == "failed"
    # the argument is shown as the characters the caller sent, not as an element
    assert XSS in text(browser, "#args")
    assert XSS in text(browser, "#job-error")
    assert not browser.find_elements(By.CSS_SELECTOR, "main img")
    assert browser.execute_script("return window.__xss === undefined") is True
    shot("job")
    browser.get(base + "/dead?queue=default")
    assert XSS in text(browser, "#dead")
    assert not browser.find_elements(By.CSS_SELECTOR, "main img")
    assert browser.execute_script("return window.__xss === undefined") is True


def test_dead_letter_requeued_from_the_page_then_runs(
    redis_url: str,
    start_dashboard: StartDashboard,
    start_worker: StartWorker,
    browser: Any,
    shot: Callable[[str], Path],
) -> None:
    start_worker("--queue", "default")
    app = kubeq.App(redis_url)
    job = dead_job(app, "dtasks.gated", 21)
    other = dead_job(app, "dtasks.gated", 1)
    base = start_dashboard(env={"KUBEQ_DASHBOARD_TOKEN": "s3cret-token"})
    browser.get(base + "/dead?queue=default")
    assert not browser.find_elements(By.ID, "requeue-selected"), "actions before logging in"
    browser.get(base + "/login")
    browser.find_element(By.ID, "token").send_keys("s3cret-token")
    browser.find_element(By.ID, "login").click()
    wait(browser, lambda b: "logged in" in b.page_source)
    browser.get(base + "/dead?queue=default")
    shot("dead-letters")
    redis.Redis.from_url(redis_url).set("gate", "1")
    browser.find_element(By.CSS_SELECTOR, f'input[name=ids][value="{job.id}"]').click()
    browser.find_element(By.ID, "requeue-selected").click()
    wait(browser, lambda b: b.find_elements(By.ID, "msg"))
    assert "requeued 1 dead letters of default" in text(browser, "#msg")
    assert job.result(timeout=60) == 42
    assert other.status() == "failed", "only the selected dead letter is requeued"
    browser.get(base + f"/jobs/default/{job.id}")
    assert text(browser, "#status") == "finished"


def test_read_only_dashboard_has_no_buttons_and_refuses_actions(
    redis_url: str,
    start_dashboard: StartDashboard,
    start_worker: StartWorker,
    browser: Any,
    shot: Callable[[str], Path],
) -> None:
    start_worker("--queue", "default")
    app = kubeq.App(redis_url)
    job = dead_job(app, "dtasks.explode", "x")
    app.queue("default").pause()
    waiting = app.queue("default").enqueue("dtasks.slow", 1)
    app.queue("default").resume()
    base = start_dashboard("--read-only")
    pages = ["/", "/queues/default", f"/jobs/default/{job.id}", f"/jobs/default/{waiting.id}"]
    for path in [*pages, "/dead?queue=default", "/workers", "/scaling"]:
        browser.get(base + path)
        assert not browser.find_elements(By.CSS_SELECTOR, "form[method=post]"), path
        assert "read-only" in text(browser, "header")
    shot("read-only-queue")
    # and a forged POST is refused even with a valid CSRF token
    with httpx.Client(base_url=base) as c:
        page = c.get("/queues/default").text
        csrf = page.split('<meta name="csrf" content="')[1].split('"')[0]
        r = c.post("/queues/default/pause", data={"csrf": csrf})
        assert r.status_code == 403
        assert "read-only" in r.text
    assert not app.queue("default").is_paused()


def test_workers_page_shows_live_workers(
    redis_url: str,
    start_dashboard: StartDashboard,
    start_worker: StartWorker,
    browser: Any,
    shot: Callable[[str], Path],
) -> None:
    start_worker("--queue", "default", "--queue", "other", "--concurrency", "3")
    app = kubeq.App(redis_url)
    job = app.queue("default").enqueue("dtasks.hold", 30.0)
    base = start_dashboard("--read-only")
    browser.get(base + "/workers")
    body = "#workers-body"
    wait(browser, lambda b: "hold" in text(b, body))
    row = text(browser, body)
    assert "default, other" in row
    assert "thread \u00d7 3" in row
    assert "MiB" in row
    link = browser.find_element(By.CSS_SELECTOR, f'{body} a[href="/jobs/default/{job.id}"]')
    assert link.text == "dtasks.hold"
    shot("workers")
    first = text(browser, body)
    wait(browser, lambda b: text(b, body) != first)  # heartbeat age and CPU move on


def test_scaling_page_without_cluster_access(start_dashboard: StartDashboard, browser: Any) -> None:
    base = start_dashboard("--read-only")
    browser.get(base + "/scaling")
    assert "No cluster access" in text(browser, "#no-cluster")


def test_a_partition_link_opens_that_partition(
    redis_url: str, start_dashboard: StartDashboard, browser: Any, shot: Callable[[str], Path]
) -> None:
    app = kubeq.App(redis_url, partitions={"pq": 2})
    job = app.queue("pq").enqueue("dtasks.slow", 1)
    base = start_dashboard("--read-only")
    browser.get(base + "/")
    browser.find_element(By.LINK_TEXT, job.queue).click()
    wait(browser, lambda b: b.find_elements(By.ID, "waiting"))
    assert text(browser, "h1").startswith(f"Queue {job.queue}")
    assert job.id in text(browser, "#waiting")
    browser.find_element(By.LINK_TEXT, job.id).click()
    wait(browser, lambda b: b.find_elements(By.ID, "job"))
    assert text(browser, "#job-id-shown") == job.id
    shot("partition")
