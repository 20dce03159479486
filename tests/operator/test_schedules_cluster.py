"""Spec schedules with the real operator on a real kube-apiserver: the CRD takes the new
fields, a schedule fires in its time zone and is visible to the library and the CLI's API, a
schedule dropped from the spec is deleted from Redis, and a bad time zone is a condition
naming the field."""

from __future__ import annotations

from typing import Any

import pytest

import kubeq
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, taskqueue

pytestmark = pytest.mark.cluster


def test_spec_schedule_fires_syncs_and_bad_fields_are_conditions(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    tick = {
        "name": "tick",
        "every": 2,
        "task": "e2e_tasks.noop",
        "timezone": "Europe/Berlin",
        "missed": "run_once",
        "overlap": "allow",
        "jitterSeconds": 0,
        "dstGap": "shift",
    }
    api.create_tq(taskqueue("sched", ns, redis_url, schedules=[tick]))
    bad = {"name": "n", "cron": "0 9 * * 1", "task": "e2e.work", "timezone": "Berlin"}
    api.create_tq(taskqueue("badtz", ns, redis_url, schedules=[bad]))
    app = kubeq.App(redis_url)
    sid = f"tq:{ns}:sched:tick"

    def fired() -> Any:
        st = app.schedules.get(sid)
        return st if st is not None and st.fired >= 2 else None

    st = wait_for(fired, timeout=90, message="the spec schedule fired twice")
    assert st.schedule.timezone == "Europe/Berlin" and st.schedule.owner == f"taskqueue:{ns}/sched"
    assert st.last_job and st.last_job.startswith(f"schedule-{sid}-")
    wait_for(
        lambda: any(e.reason == "ScheduleEnqueued" for e in api.events(ns, "sched")),
        timeout=60,
        message="a ScheduleEnqueued Event",
    )

    def invalid() -> Any:
        c = api.condition(ns, "badtz", "Ready")
        return c if c and c["reason"] == "InvalidSpec" else None

    c = wait_for(invalid, timeout=60, message="badtz InvalidSpec")
    assert "spec.schedules[0].timezone" in c["message"] and "IANA" in c["message"]

    api.patch_tq(ns, "sched", {"spec": {"schedules": None}})
    wait_for(lambda: app.schedules.get(sid) is None, timeout=60, message="the schedule deleted")
    app.close()
