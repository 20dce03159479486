"""Two peered operator replicas, against the real API server: the active one is frozen
(SIGSTOP: a stalled node, a long GC pause) across a schedule's due time, the standby takes
over, then the frozen one wakes up (SIGCONT) believing it still leads, with its old state.
For a while both run passes. Every due time must still be one Event and one job, and the
replicas must still follow the backlog (no scaling past what it asks for).

The TaskQueue's pods select a node that does not exist, so the jobs stay in the backlog and
the replicas follow it alone (jobsPerReplica 10).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from kubernetes import watch

import kubeq
from kubeq.store.stats import read_stats
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import OperatorProcess, install_crd, queue_of, taskqueue
from tests.operator.test_ha import (
    LIFETIME,
    PEERING,
    PEERING_CRD,
    peering_lines,
    peering_records,
    replicas,
)

pytestmark = pytest.mark.cluster


def test_a_frozen_active_replica_that_wakes_up_enqueues_no_due_time_twice(
    local_cluster: Any, kubectl: Any, k8s_namespace: str, api: Any, redis_url: str, tmp_path: Path
) -> None:
    ns = k8s_namespace
    install_crd(kubectl)
    kubectl("apply", "-f", str(PEERING_CRD), check=True)
    kubectl("wait", "--for", "condition=established", "crd/kopfpeerings.kopf.dev", check=True)
    peering = f"apiVersion: kopf.dev/v1\nkind: KopfPeering\nmetadata: {{name: {PEERING}}}\n"
    kubectl("apply", "-n", ns, "-f", "-", input=peering, check=True)
    args = ("-n", ns, "--peering", PEERING, "--peering-lifetime", str(LIFETIME))
    a = OperatorProcess(local_cluster.kubeconfig, tmp_path / "a.log", *args)
    b: OperatorProcess | None = None
    highest: list[int] = [0]
    stop = threading.Event()

    def watch_replicas() -> None:  # the most replicas the Deployment ever asked for
        w = watch.Watch()
        while not stop.is_set():
            try:
                for ev in w.stream(api.apps.list_namespaced_deployment, ns, timeout_seconds=5):
                    highest[0] = max(highest[0], int(ev["object"].spec.replicas or 0))
                    if stop.is_set():
                        break
            except Exception:  # a dropped watch: start again
                time.sleep(0.5)

    watcher = threading.Thread(target=watch_replicas, daemon=True)
    try:
        a.wait_ready()
        # A resumes on its first look at the peering object, which can come before its own
        # record is written: B starts once A's record is there, as a standby would see it
        wait_for(lambda: "Resuming operations" in a.log(), timeout=60, message="A active")
        wait_for(lambda: len(peering_records(api, ns)) == 1, timeout=60, message="A's record")
        b = OperatorProcess(local_cluster.kubeconfig, tmp_path / "b.log", *args)
        b.wait_ready()
        wait_for(lambda: len(peering_records(api, ns)) == 2, timeout=60, message="both records")
        time.sleep(LIFETIME / 3)  # a few renewals
        assert "Resuming operations" not in b.log(), (
            f"the newer replica took over\nA:\n{peering_lines(a.log())}\n"
            f"B:\n{peering_lines(b.log())}\nrecords: {peering_records(api, ns)}"
        )
        q = queue_of("tq", ns)
        api.create_tq(
            taskqueue(
                "tq",
                ns,
                redis_url,
                scaling={"maxReplicas": 5, "jobsPerReplica": 10, "pollSeconds": 0.5},
                worker={"podTemplate": {"spec": {"nodeSelector": {"kubeq.dev/none": "x"}}}},
                schedules=[{"name": "tick", "cron": "* * * * *", "task": "e2e_tasks.noop"}],
            )
        )
        watcher.start()
        app = kubeq.App(redis_url)
        app.enqueue_many([kubeq.Call("e2e_tasks.noop", (), queue=q) for _ in range(5)])
        wait_for(lambda: replicas(api, ns) == 1, timeout=120, message="1 replica from A")

        def scheduled() -> list[str]:
            return [e.message for e in api.events(ns, "tq") if e.reason == "ScheduleEnqueued"]

        def due_after(t: float) -> bool:
            ats = [int(m.rsplit("-", 1)[1].rstrip(")")) for m in scheduled()]
            return any(at > t for at in ats)

        # freeze A with a due time (the next minute) ahead, so it passes while A is frozen
        time.sleep((50 - time.time() % 60) % 60)
        frozen_at = time.time()
        a.proc.send_signal(signal.SIGSTOP)
        app.enqueue_many([kubeq.Call("e2e_tasks.noop", (), queue=q) for _ in range(10)])
        wait_for(lambda: "Resuming operations" in b.log(), timeout=LIFETIME + 90, message="B leads")
        wait_for(lambda: replicas(api, ns) == 2, timeout=90, interval=0.5, message="B: 2")
        wait_for(lambda: due_after(frozen_at), timeout=150, interval=1, message="B's due time")

        woke_at = time.time()
        a.proc.send_signal(signal.SIGCONT)  # A wakes up with its old view, still "leading"
        # both run passes until the peering settles; then the next due time, by whoever leads
        wait_for(lambda: due_after(woke_at), timeout=150, interval=1, message="a later due time")
        time.sleep(3)
        app.close()
        assert a.alive() and b.alive()

        messages = scheduled()
        assert len(messages) == len(set(messages)), f"a due time enqueued twice: {messages}"
        r = redis.Redis.from_url(redis_url)
        backlog = read_stats(r, [q])[0].backlog
        r.close()
        assert backlog == 15 + len(messages), "each due time is exactly one job in the queue"
        wanted = math.ceil(backlog / 10)
        assert replicas(api, ns) == wanted
        assert highest[0] <= wanted, f"scaled to {highest[0]}, the backlog asks for {wanted}"
    finally:
        stop.set()
        for op in (a, b):
            if op is not None and op.alive():
                op.proc.send_signal(signal.SIGCONT)
        kubectl("delete", "taskqueues", "--all", "-n", ns, "--wait=true", "--timeout=60s")
        for op in (a, b):
            if op is not None:
                op.stop()
        if watcher.is_alive():
            watcher.join(10)
