"""Operator processes coming and going: a restart never scales down at once, and periodic
jobs are enqueued once per due time with two operators running. These tests start their
own operator processes (no module-wide operator)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kubeq
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import Api, OperatorProcess, install_crd, queue_of, taskqueue


@pytest.fixture
def start_operator(local_cluster: Any, kubectl: Any, tmp_path: Path) -> Iterator[Any]:
    install_crd(kubectl)
    started: list[OperatorProcess] = []

    def start(tag: str) -> OperatorProcess:
        op = OperatorProcess(local_cluster.kubeconfig, tmp_path / f"operator-{tag}.log")
        op.wait_ready()
        started.append(op)
        return op

    yield start
    if any(op.alive() for op in started):
        kubectl("delete", "taskqueues", "--all", "--all-namespaces", "--wait=true", "--timeout=90s")
    for op in started:
        assert op.stop() == 0, op.log()[-3000:]


def test_restart_does_not_scale_down_at_once(
    start_operator: Any, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    op1 = start_operator("1")
    api.create_tq(
        taskqueue(
            "restart",
            ns,
            redis_url,
            scaling={
                "minReplicas": 3,
                "maxReplicas": 3,
                "idleSecondsBeforeZero": 0,
                "scaleDown": {"stabilizationSeconds": 12, "periodSeconds": 0, "maxPodsPerStep": 3},
            },
        )
    )
    wait_for(
        lambda: (d := api.deployment(ns, "restart-worker")) is not None and d.spec.replicas == 3,
        timeout=30,
        message="3 replicas",
    )
    assert op1.stop() == 0
    # while no operator runs, the floor goes away: the queue is empty, so 0 is where it ends
    api.patch_tq(ns, "restart", {"spec": {"scaling": {"minReplicas": 0}}})
    op2 = start_operator("2")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 8:  # well inside the 12 s window the new operator observes
        assert api.deployment(ns, "restart-worker").spec.replicas == 3
        time.sleep(0.5)
    wait_for(
        lambda: api.deployment(ns, "restart-worker").spec.replicas == 0,
        timeout=60,
        message="scaled to zero after the stabilization window",
    )
    elapsed = time.monotonic() - t0
    print(f"\nTIMINGS restart: held 3 replicas {elapsed:.1f} s after the restart, then 0")
    assert op2.alive()


def test_schedule_enqueued_once_with_two_operators(
    start_operator: Any, api: Api, k8s_namespace: str, redis_url: str
) -> None:
    ns = k8s_namespace
    start_operator("a")
    start_operator("b")
    q = queue_of("cron", ns)
    api.create_tq(
        taskqueue(
            "cron",
            ns,
            redis_url,
            schedules=[
                {
                    "name": "every-minute",
                    "cron": "* * * * *",
                    "task": "e2e.work",
                    "args": [42],
                    "queue": q,
                }
            ],
        )
    )
    app = kubeq.App(redis_url)

    def runs() -> list[str]:
        return [r.decode() for r in app.redis.lrange("e2e:runs", 0, -1)]

    # the first due time is the next minute boundary (a new schedule starts from now)
    wait_for(runs, timeout=90, message="the scheduled job ran")
    first = time.time()
    time.sleep(6)  # both operators polled several times since
    assert len(runs()) == 1, runs()
    assert runs()[0].startswith("42|")
    enqueued = [e for e in api.events(ns, "cron") if e.reason == "ScheduleEnqueued"]
    assert len(enqueued) == 1, [e.message for e in enqueued]
    print(f"\nTIMINGS schedule: ran once at {time.strftime('%H:%M:%S', time.gmtime(first))}")
    app.close()
