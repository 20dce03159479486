"""Two operator replicas with kopf peering, against the real API server: the older one works,
the newer one waits; SIGKILL the active one and the standby takes over, scales, and runs the
periodic job, with no double scaling and no due time enqueued twice.

The TaskQueue's pods select a node that does not exist, so its jobs stay in the backlog and
the replicas follow the backlog alone (jobsPerReplica 10). The failover's timeline (killed ->
standby resumed -> first scale decision) is printed and written to
``$TMPDIR/kubeq-failover-timeline.json``; with ``KUBEQ_FAILOVER_RESULTS=PATH`` (a results file
under bench/results) it is also appended there, and ``bench/operator_many_taskqueues.py
--render`` puts the table into docs/scaling.md.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import redis

import kubeq
from kubeq.store.stats import read_stats
from kubeq_operator.names import deployment_name
from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import (
    ROOT,
    OperatorProcess,
    Timeline,
    install_crd,
    queue_of,
    taskqueue,
)

pytestmark = pytest.mark.cluster

PEERING = "kubeq-ha"
LIFETIME = 15
PEERING_CRD = ROOT / "charts" / "kubeq" / "crds" / "kopfpeerings.kopf.dev.yaml"
SCALED = re.compile(r"(\d+) -> (\d+) replicas")


def replicas(api: Any, ns: str) -> int:
    dep = api.deployment(ns, deployment_name("tq"))
    return -1 if dep is None else int(dep.spec.replicas or 0)


def peering_records(api: Any, ns: str) -> dict[str, Any]:
    """The replicas' records in the namespace's peering object (kopf writes one per replica)."""
    body = api.custom.get_namespaced_custom_object("kopf.dev", "v1", ns, "kopfpeerings", PEERING)
    return dict(body.get("status") or {})


def peering_lines(log: str) -> str:
    """kopf's pause and resume lines of one replica's log, for a failure's message."""
    marks = ("Pausing", "Resuming", "conflicting operators")
    return "\n".join(line for line in log.splitlines() if any(m in line for m in marks))


def scale_lines(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if SCALED.search(ln) and "kubeq_operator" in ln]


def who_scaled(api: Any, ns: str, a_lines: list[str], b_lines: list[str]) -> str:
    """What a failed no-double-scaling check needs to say who scaled: each replica's scale
    lines, the TaskQueue's scale events in order, and every operator process alive now (one
    left running by an earlier test would scale this TaskQueue too)."""
    events = [
        f"{e.metadata.creation_timestamp} {e.reason}: {e.message}"
        for e in api.events(ns, "tq")
        if SCALED.search(e.message or "")
    ]
    alive = subprocess.run(
        ["pgrep", "-af", "kubeq_operator"], capture_output=True, text=True, check=False
    ).stdout
    return (
        f"A's scale lines: {a_lines}\nB's scale lines: {b_lines}\nevents: {events}\n"
        f"operator processes now:\n{alive}"
    )


def record(path: str, marks: dict[str, float], due: int, jobs: int, loads: list[float]) -> None:
    """Append this failover's timeline to the results file ``path``."""
    sys.path.insert(0, str(ROOT / "bench"))
    import operator_scale_report  # bench/ is not a package

    run = {
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "peering_lifetime_s": LIFETIME,
        "timeline_s": marks,
        "due_times": due,
        "scheduled_jobs": jobs,
        "load_avg_1m": [round(x, 2) for x in loads],
    }
    operator_scale_report.append(path, run, bench=operator_scale_report.FAILOVER_BENCH)


def test_standby_takes_over_when_the_active_operator_is_killed(
    local_cluster: Any, kubectl: Any, k8s_namespace: str, api: Any, redis_url: str, tmp_path: Path
) -> None:
    ns = k8s_namespace
    install_crd(kubectl)
    kubectl("apply", "-f", str(PEERING_CRD), check=True)
    kubectl("wait", "--for", "condition=established", "crd/kopfpeerings.kopf.dev", check=True)
    peering = f"apiVersion: kopf.dev/v1\nkind: KopfPeering\nmetadata: {{name: {PEERING}}}\n"
    kubectl("apply", "-n", ns, "-f", "-", input=peering, check=True)

    def peers() -> dict[str, Any]:
        return peering_records(api, ns)

    args = ("-n", ns, "--peering", PEERING, "--peering-lifetime", str(LIFETIME))
    a = OperatorProcess(local_cluster.kubeconfig, tmp_path / "a.log", *args)
    b: OperatorProcess | None = None
    try:
        a.wait_ready()
        wait_for(lambda: len(peers()) == 1, timeout=60, message="the first replica's record")
        b = OperatorProcess(local_cluster.kubeconfig, tmp_path / "b.log", *args)
        b.wait_ready()
        wait_for(lambda: len(peers()) == 2, timeout=60, message="both replicas' records")
        standby, active = b, a
        # kopf starts paused and logs when it resumes: the older replica did, the newer not
        wait_for(lambda: "Resuming operations" in active.log(), timeout=60, message="A active")
        time.sleep(LIFETIME / 3)  # a few peering renewals
        assert "Resuming operations" not in standby.log(), (
            f"the newer replica took over\nA:\n{peering_lines(a.log())}\n"
            f"B:\n{peering_lines(b.log())}\nrecords: {peers()}"
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
        app = kubeq.App(redis_url)
        app.enqueue_many([kubeq.Call("e2e_tasks.noop", (), queue=q) for _ in range(5)])
        wait_for(lambda: replicas(api, ns) == 1, timeout=120, message="1 replica from the active")
        # the operator logs its scale line after the API server has answered the patch, which
        # the Deployment shows first: kill A only once its line is written, or the SIGKILL
        # can land in between and take the line (not the decision) with it
        deadline = time.monotonic() + 30
        while not scale_lines(a.log()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scale_lines(a.log()), who_scaled(api, ns, [], scale_lines(standby.log()))

        t = Timeline()
        loads = [os.getloadavg()[0]]
        killed_at = time.time()
        a.proc.kill()  # SIGKILL: no clean exit, its peering record stays until it expires
        a.proc.wait(10)
        t.mark("active killed")
        app.enqueue_many([kubeq.Call("e2e_tasks.noop", (), queue=q) for _ in range(10)])
        wait_for(
            lambda: "Resuming operations" in standby.log(),
            timeout=LIFETIME + 90,
            interval=0.2,
            message="the standby to resume",
        )
        t.mark("standby resumed")
        wait_for(lambda: replicas(api, ns) == 2, timeout=90, interval=0.2, message="2 replicas")
        t.mark("standby scaled 1 -> 2")

        # a due time after the takeover, enqueued by the new active one (cron: every minute)
        def scheduled() -> list[str]:
            events = api.events(ns, "tq")
            return [e.message for e in events if e.reason == "ScheduleEnqueued"]

        def after_kill() -> bool:
            ats = [int(m.rsplit("-", 1)[1].rstrip(")")) for m in scheduled()]
            return any(at > killed_at for at in ats)

        wait_for(after_kill, timeout=150, interval=1, message="a periodic job after the kill")
        t.mark("periodic job by the new active one")
        loads.append(os.getloadavg()[0])
        app.close()

        messages = scheduled()
        assert len(messages) == len(set(messages)), f"a due time enqueued twice: {messages}"
        r = redis.Redis.from_url(redis_url)
        backlog = read_stats(r, [q])[0].backlog
        r.close()
        assert backlog == 15 + len(messages), "each due time is exactly one job in the queue"
        assert replicas(api, ns) == math.ceil(backlog / 10)

        # no double scaling: the standby decided nothing before it resumed; one decision each
        a_lines, b_lines = scale_lines(a.log()), scale_lines(standby.log())
        a_seen = [SCALED.search(x).group(0) for x in a_lines]  # type: ignore[union-attr]
        b_seen = [SCALED.search(x).group(0) for x in b_lines]  # type: ignore[union-attr]
        # who_scaled is called only when an assert fails
        assert a_seen == ["0 -> 1 replicas"], who_scaled(api, ns, a_lines, b_lines)
        assert b_seen == ["1 -> 2 replicas"], who_scaled(api, ns, a_lines, b_lines)
        b_log = standby.log()
        assert b_log.index("Resuming operations") < b_log.index("1 -> 2 replicas")

        timeline = {**t.marks, "peering_lifetime_s": LIFETIME}
        print(f"\nfailover timeline (s after the SIGKILL): {json.dumps(timeline)}")
        out = Path(tempfile.gettempdir()) / "kubeq-failover-timeline.json"
        out.write_text(json.dumps(timeline) + "\n")
        if results := os.environ.get("KUBEQ_FAILOVER_RESULTS"):
            record(results, t.marks, len(messages), backlog - 15, loads)
    finally:
        kubectl("delete", "taskqueues", "--all", "-n", ns, "--wait=true", "--timeout=60s")
        for op in (a, b):
            if op is not None:
                op.stop()
