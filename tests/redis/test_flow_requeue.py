"""A dead letter of a debounced or singleton key, requeued, takes its key back (so the next
call of the key meets it, as the mode says); when a newer job of the key holds the key and
wins by the mode's rule, the requeue is refused, says why, and the job stays a dead letter."""

from __future__ import annotations

from typing import Any

import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker, run

T = qtasks.app.tasks
KEYS = QueueKeys.of("default")
MODES = ("skip", "replace", "keep_latest", "cancel_running", "debounce")


def call(app: kubeq.App, mode: str, account: str, seconds: float, tag: str) -> kubeq.Job:
    opts: dict[str, Any] = (
        {"debounce": 0.2, "debounce_key": account}
        if mode == "debounce"
        else {"singleton": mode, "singleton_key": account}
    )
    return app.enqueue_many([T["flowtasks.flaky"].s(account, seconds, tag).set(**opts)])[0]


def held(r: redis.Redis, account: str) -> str | None:
    value = r.get(KEYS.flow(f"flowtasks.flaky:{account}"))
    return None if value is None else value.decode()


def dead_letters(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker, accounts: dict[str, str]
) -> dict[str, kubeq.Job]:
    """One dead letter per account, of its mode; no worker runs afterwards."""
    for account in accounts:
        r.set(f"flowtest:fail:{account}", 1)
    jobs = {a: call(app, mode, a, 0.0, "first") for a, mode in accounts.items()}
    worker = start_worker()
    for job in jobs.values():
        wait_until(lambda job=job: job.status() == "failed", what=f"{job.id} is dead-lettered")
    worker.stop()
    for account in accounts:
        r.delete(f"flowtest:fail:{account}")
        assert held(r, account) is None
    return jobs


def test_a_requeued_dead_letter_takes_its_key_back(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    """Then the next call meets it: skip returns it unchanged; the other modes join it (it
    runs once, with the newer call's arguments)."""
    r = redis.Redis.from_url(redis_url)
    accounts = {f"rq-{mode}": mode for mode in MODES}
    dead = dead_letters(app, r, start_worker, accounts)
    done = app.queue("default").requeue([j.id for j in dead.values()])
    assert (done.count, done.refused) == (len(MODES), {})
    for account, mode in accounts.items():
        job = dead[account]
        assert held(r, account) == job.id, f"{mode}: the requeued job did not take its key"
        nxt = call(app, mode, account, 0.0, "second")
        assert (nxt.id, nxt.created) == (job.id, False), f"{mode}: the next call made {nxt.id}"
    start_worker()
    for account, mode in accounts.items():
        want = "first" if mode == "skip" else "second"
        assert dead[account].result(timeout=60) == want, mode
        assert r.lrange(f"flowtest:runs:{account}", 0, -1) == [b"first", want.encode()]
        assert held(r, account) is None


def test_a_requeue_is_refused_when_a_newer_job_holds_the_key(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    """A newer job waiting to run wins in every mode; a running one wins under skip and
    cancel_running. Under replace and keep_latest the dead letter takes the key while the
    newer one runs (keep_latest: it waits for that run to end)."""
    r = redis.Redis.from_url(redis_url)
    accounts = {"w-skip": "skip", "w-debounce": "debounce", **{f"r-{m}": m for m in MODES[:4]}}
    dead = dead_letters(app, r, start_worker, accounts)
    q = app.queue("default")
    waiting = {a: call(app, m, a, 0.0, "newer") for a, m in accounts.items() if a[0] == "w"}
    refused = q.requeue([dead[a].id for a in waiting]).refused
    for a, newer in waiting.items():
        assert f"held by the newer job {newer.id}, waiting to run" in refused[dead[a].id], a
        assert held(r, a) == newer.id
    out = run(redis_url, "dlq", "requeue", dead["w-skip"].id)
    assert out.returncode == 0, out.stderr
    assert "re-queued 0 dead letters" in out.stdout
    assert f"not re-queued {dead['w-skip'].id}: its skip key" in out.stderr
    start_worker("--concurrency", "8")
    running = {a: call(app, m, a, 30.0, "running") for a, m in accounts.items() if a[0] == "r"}
    for a in running:
        wait_until(lambda a=a: r.llen(f"flowtest:runs:{a}") == 2, what=f"{a} runs")
    done = q.requeue([dead[a].id for a in running])
    assert done.count == 2
    assert set(done.refused) == {dead["r-skip"].id, dead["r-cancel_running"].id}
    assert "running (requeue this one after that run)" in done.refused[dead["r-skip"].id]
    assert running["r-cancel_running"].status() == "active"  # not aborted by the requeue
    assert held(r, "r-keep_latest") == dead["r-keep_latest"].id
    assert held(r, "r-replace") == dead["r-replace"].id
    assert dead["r-replace"].result(timeout=60) == "first"  # beside the newer run
    # behind the newer run, for the key's slot
    assert dead["r-keep_latest"].status() in ("queued", "waiting")
    still = ("w-skip", "w-debounce", "r-skip", "r-cancel_running")
    assert set(q.dead_letter_ids()) == {dead[a].id for a in still}
