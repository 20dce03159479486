"""Spec schedules and their TaskQueue, with the real operator on a real kube-apiserver: a
schedule that cannot fire is an Event on the TaskQueue that owns it and on no other TaskQueue
sharing its Redis (a runtime schedule's error, owned by no TaskQueue, is in the operator's
log); a deleted TaskQueue's schedules leave Redis with it."""

from __future__ import annotations

import pytest

import kubeq
from kubeq.store.keys import schedule_key
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, taskqueue

pytestmark = pytest.mark.cluster

OTHERS = ("other1", "other2", "other3")


def break_queue(app: kubeq.App, sid: str) -> None:
    """Make a stored schedule name a queue no enqueue accepts (as a hand edit would)."""
    st = app.schedules.get(sid)
    assert st is not None
    spec = app.redis.hget(schedule_key(sid), "spec")
    assert spec is not None
    queue = f'"queue":"{st.schedule.queue}"'.encode()
    assert queue in spec, spec
    app.redis.hset(schedule_key(sid), "spec", spec.replace(queue, b'"queue":"a{b}"'))


def schedule_errors(api: Api, ns: str, name: str) -> list[str]:
    return [e.message for e in api.events(ns, name) if e.reason == "ScheduleError"]


def test_a_schedules_error_is_an_event_on_its_own_taskqueue_only(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    tick = {"name": "tick", "every": 2, "task": "e2e_tasks.noop", "missed": "run_once"}
    api.create_tq(taskqueue("owner", ns, redis_url, schedules=[tick]))
    for name in OTHERS:
        api.create_tq(taskqueue(name, ns, redis_url))
    app = kubeq.App(redis_url)
    sid = f"tq:{ns}:owner:tick"
    try:
        wait_for(
            lambda: (st := app.schedules.get(sid)) is not None and st.fired >= 1,
            timeout=90,
            message="the spec schedule fired once",
        )
        app.schedules.upsert("runtime-broken", "e2e_tasks.noop", every=2, queue="rq")
        break_queue(app, sid)
        break_queue(app, "runtime-broken")

        def posted() -> dict[str, list[str]]:
            found = {n: schedule_errors(api, ns, n) for n in ("owner", *OTHERS)}
            return found if sum(map(len, found.values())) >= 4 else {}

        found = wait_for(posted, timeout=90, message="4 ScheduleError Events in the namespace")
        assert {n: found[n] for n in OTHERS} == {n: [] for n in OTHERS}, found
        assert all(sid in m and "a{b}" in m for m in found["owner"]), found["owner"]
        log = operator.log()
        assert "schedule runtime-broken: " in log, log[-3000:]
    finally:
        app.schedules.delete("runtime-broken")
        app.close()
        for name in ("owner", *OTHERS):
            api.delete_tq(ns, name)


def test_a_deleted_taskqueues_schedules_leave_redis(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    nightly = {"name": "nightly", "cron": "0 3 * * *", "task": "e2e_tasks.noop"}
    api.create_tq(taskqueue("keep", ns, redis_url, schedules=[nightly]))
    api.create_tq(taskqueue("drop", ns, redis_url, schedules=[nightly]))
    app = kubeq.App(redis_url)
    app.schedules.upsert(f"tq:{ns}:dropped-by-hand", "e2e_tasks.noop", every=3600)
    ids = {f"tq:{ns}:keep:nightly", f"tq:{ns}:drop:nightly", f"tq:{ns}:dropped-by-hand"}
    try:
        wait_for(
            lambda: {s.schedule.id for s in app.schedules.list()} == ids,
            timeout=90,
            message="both spec schedules in Redis",
        )
        api.delete_tq(ns, "drop")
        wait_for(
            lambda: (
                {s.schedule.id for s in app.schedules.list()} == ids - {f"tq:{ns}:drop:nightly"}
            ),
            timeout=90,
            message=lambda: f"only drop's schedule removed: {app.schedules.list()}",
        )
    finally:
        app.close()
        api.delete_tq(ns, "keep")
