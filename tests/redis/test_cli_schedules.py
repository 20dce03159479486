"""``kubeq schedule ...`` as a user runs it (the real console script on a real Redis)."""

from __future__ import annotations

import json

import kubeq
from tests.redis.workers import run


def test_list_show_pause_resume_trigger_delete(redis_url: str, app: kubeq.App) -> None:
    app.schedules.upsert(
        "digest-42",
        "mail.digest",
        args=(42,),
        cron="0 9 * * 1",
        timezone="Europe/Berlin",
        queue="mail",
        overlap="skip",
    )
    app.schedules.upsert("sweep", "ops.sweep", every=300, queue="ops")
    out = run(redis_url, "schedule", "list")
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if "digest-42" in x)
    assert "cron 0 9 * * 1" in line and "Europe/Berlin" in line and "T09:00:00+0" in line
    assert "active" in line
    rows = json.loads(run(redis_url, "schedule", "list", "-o", "json").stdout)
    assert [r["id"] for r in rows] == ["digest-42", "sweep"]
    assert rows[0]["next_due"] == app.schedules.get("digest-42").next_due  # type: ignore[union-attr]

    out = run(redis_url, "schedule", "show", "digest-42")
    assert "overlap: skip" in out.stdout and "next: " in out.stdout, out.stdout
    assert run(redis_url, "schedule", "pause", "digest-42").stdout.strip() == "paused digest-42"
    assert app.schedules.get("digest-42").paused  # type: ignore[union-attr]
    assert "paused" in run(redis_url, "schedule", "list").stdout
    assert run(redis_url, "schedule", "resume", "digest-42").returncode == 0
    assert not app.schedules.get("digest-42").paused  # type: ignore[union-attr]

    out = run(redis_url, "schedule", "trigger", "sweep")
    job_id = out.stdout.split()[-1]
    assert app.job(job_id, "ops").status() == "queued"

    assert run(redis_url, "schedule", "delete", "sweep").stdout.strip() == "deleted sweep"
    gone = run(redis_url, "schedule", "show", "sweep")
    assert gone.returncode == 1 and "no schedule sweep" in gone.stderr
    assert run(redis_url, "schedule", "pause", "nope").returncode == 1
