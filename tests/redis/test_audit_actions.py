"""Every admin command of the CLI leaves an audit entry an on-call engineer can read with
`kubeq audit`: pause, resume, purge, one job's cancel and abort, dead-letter requeue and
purge, each with who, the queue, what and how many jobs (real Redis, real worker)."""

from __future__ import annotations

import json

import pytest
import qtasks

import kubeq
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker, run


def test_cli_admin_actions_are_audited(
    redis_url: str, app: kubeq.App, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEQ_ACTOR", "bob@ops")
    q = app.queue("aq")
    waiting = [q.enqueue_call("t.mail", (i,)) for i in range(4)]
    for args in (
        ("pause", "aq"),
        ("resume", "aq"),
        ("job", "cancel", waiting[0].id, "-q", "aq"),
        ("job", "abort", waiting[1].id, "-q", "aq"),
        ("purge", "aq", "--yes"),
        ("limit", "aq", "10/s"),
        ("fair", "aq", "acme=3"),
    ):
        out = run(redis_url, *args)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    again = run(redis_url, "job", "cancel", waiting[0].id, "-q", "aq")  # nothing left to do
    assert again.returncode == 1 and "not cancelled" in again.stderr

    dq = app.queue("adead")
    for _ in range(3):
        dq.enqueue_call(qtasks.always_fail, max_attempts=1)
    worker = start_worker("--queue", "adead")
    wait_until(lambda: len(dq.dead_letter_ids()) == 3, timeout=60, what="3 dead letters")
    worker.stop()
    one = dq.dead_letter_ids()[0]
    assert run(redis_url, "dlq", "requeue", one, "-q", "adead").returncode == 0
    assert run(redis_url, "dlq", "purge", "--all", "-q", "adead").returncode == 0

    rows = json.loads(run(redis_url, "audit", "-o", "json").stdout)
    seen = [(r["action"], r["target"], r["count"], r["queue"]) for r in rows]
    assert seen == [
        ("dlq.purge", "--all", 2, "adead"),
        ("dlq.requeue", one, 1, "adead"),
        ("queue.weights", "aq acme=3", 0, "aq"),
        ("queue.limit", "aq 10/s", 0, "aq"),
        ("queue.purge", "aq", 2, "aq"),
        ("job.abort", waiting[1].id, 1, "aq"),
        ("job.cancel", waiting[0].id, 1, "aq"),
        ("queue.resume", "aq", 4, "aq"),
        ("queue.pause", "aq", 4, "aq"),
    ]
    assert {(r["who"], r["via"]) for r in rows} == {("bob@ops", "cli")}
    table = run(redis_url, "audit").stdout
    assert "queue.pause" in table and "bob@ops" in table and "cli" in table
    only = json.loads(run(redis_url, "audit", "--action", "job.", "-q", "aq", "-o", "json").stdout)
    assert [r["action"] for r in only] == ["job.abort", "job.cancel"]
    nobody = json.loads(run(redis_url, "audit", "--who", "mallory", "-o", "json").stdout)
    assert nobody == []
