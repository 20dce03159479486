"""Finding jobs by status, task and age (library and `kubeq jobs`), and bulk actions on a
filter with a dry-run count first, on a real Redis with a real worker."""

from __future__ import annotations

import json

import qtasks

import kubeq
from kubeq.client.search import find
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker, run


def test_find_queued_by_task_and_cancel_by_filter(redis_url: str, app: kubeq.App) -> None:
    q = app.queue("search")
    mail = [q.enqueue_call("t.mail", (i,)) for i in range(5)]
    q.enqueue_many([kubeq.Call("t.pay", (i,), queue="search") for i in range(3)])
    got = find(app, ["search"], "queued", task="t.mail")
    assert sorted(j.id for j in got.jobs) == sorted(j.id for j in mail) and got.complete
    assert len(find(app, ["search"], "queued", since=3600).jobs) == 8
    assert find(app, ["search"], "queued", task="t.mail", limit=2).jobs.__len__() == 2

    out = run(
        redis_url, "jobs", "-q", "search", "--status", "queued", "--task", "t.mail", "-o", "name"
    )
    assert sorted(out.stdout.split()) == sorted(j.id for j in mail), out.stderr
    dry = run(
        redis_url,
        "jobs",
        "-q",
        "search",
        "--status",
        "queued",
        "--task",
        "t.mail",
        "--cancel",
        "--dry-run",
    )
    lines = dry.stdout.strip().splitlines()
    assert lines[0] == "would cancel 5 jobs" and q.stats().backlog == 8
    assert sorted(line.split("\t")[0] for line in lines[1:]) == sorted(j.id for j in mail)
    unsure = run(
        redis_url, "jobs", "-q", "search", "--status", "queued", "--task", "t.mail", "--cancel"
    )
    assert unsure.returncode == 2 and "add --yes" in unsure.stderr and q.stats().backlog == 8
    done = run(
        redis_url,
        "jobs",
        "-q",
        "search",
        "--status",
        "queued",
        "--task",
        "t.mail",
        "--cancel",
        "--yes",
    )
    assert done.stdout.strip() == "cancelled 5 of 5 jobs", done.stdout + done.stderr
    assert q.stats().backlog == 3
    bad = run(redis_url, "jobs", "-q", "search", "--status", "queued", "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_failed_since_and_requeue(
    redis_url: str, app: kubeq.App, start_worker: StartWorker
) -> None:
    start_worker("--queue", "sfail")
    q = app.queue("sfail")
    jobs = [q.enqueue_call(qtasks.always_fail, max_attempts=1) for _ in range(3)]
    wait_until(lambda: len(q.dead_letter_ids()) == 3, timeout=60, what="3 dead letters")
    rows = json.loads(
        run(
            redis_url, "jobs", "-q", "sfail", "--status", "failed", "--since", "1h", "-o", "json"
        ).stdout
    )
    assert sorted(r["id"] for r in rows) == sorted(j.id for j in jobs)
    assert all(r["status"] == "failed" for r in rows)
    none = run(redis_url, "jobs", "-q", "sfail", "--status", "failed", "--task", "other.task")
    assert "always_fail" not in none.stdout
    out = run(redis_url, "jobs", "-q", "sfail", "--status", "failed", "--requeue", "--dry-run")
    assert out.stdout.strip().splitlines()[0] == "would requeue 3 jobs"
    assert len(q.dead_letter_ids()) == 3
