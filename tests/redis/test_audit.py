"""The audit trail as an on-call engineer reads it: schedule pauses, resumes, triggers and
deletes, and bulk job actions, each with who, what, when and how many, in ``kubeq audit``;
the stream stays capped."""

from __future__ import annotations

import json
import os
import time

import pytest

import kubeq
from kubeq.store import audit
from kubeq.store.keys import audit_key
from tests.redis.workers import run


def test_schedule_actions_and_bulk_cancel_are_listed_with_who_and_count(
    redis_url: str, app: kubeq.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEQ_ACTOR", "alice@oncall")
    app.schedules.upsert("digest", "mail.digest", every=300, queue="mail")
    started = time.time()
    for action in ("pause", "resume", "trigger", "delete"):
        out = run(redis_url, "schedule", action, "digest")
        assert out.returncode == 0, out.stderr
    assert not app.schedules.pause("digest")  # nothing changed: nothing recorded
    q = app.queue("audited")
    for i in range(3):
        q.enqueue("t.mail", i)
    out = run(redis_url, "jobs", "-q", "audited", "--status", "queued", "--cancel", "--dry-run")
    assert out.stdout.strip().splitlines()[0] == "would cancel 3 jobs"
    out = run(
        redis_url,
        "jobs",
        "-q",
        "audited",
        "--status",
        "queued",
        "--task",
        "t.mail",
        "--cancel",
        "--yes",
    )
    assert out.stdout.strip() == "cancelled 3 of 3 jobs", out.stdout + out.stderr

    rows = json.loads(run(redis_url, "audit", "-o", "json").stdout)
    assert [(r["action"], r["target"], r["count"]) for r in rows] == [
        ("jobs.cancel", "queue=audited status=queued task=t.mail", 3),
        ("schedule.delete", "digest", 1),
        ("schedule.trigger", "digest", 1),
        ("schedule.resume", "digest", 1),
        ("schedule.pause", "digest", 1),
    ]
    assert {r["who"] for r in rows} == {"alice@oncall"}
    assert {r["via"] for r in rows} == {"cli"}
    assert all(r["at_ms"] >= int(started * 1000) - 1000 for r in rows)
    table = run(redis_url, "audit").stdout
    assert "alice@oncall" in table and "jobs.cancel" in table, table


def test_the_stream_is_capped_and_names_the_local_user_by_default(
    app: kubeq.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBEQ_ACTOR", raising=False)
    monkeypatch.setattr(audit, "MAX_ENTRIES", 20)
    for i in range(50):
        audit.record(app.redis, app.prefix, "schedule.pause", f"s{i}")
    assert app.redis.xlen(audit_key(app.prefix)) == 20
    newest = audit.read(app.redis, app.prefix, 1)[0]
    assert newest.target == "s49" and newest.who.startswith(f"{os.environ.get('USER', '')}")
    assert "@" in newest.who
