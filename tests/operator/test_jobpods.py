"""Job mode of a worker pool, the pure part: the spec (``mode: Job``, ``job.ttl...``), the
Job manifest (one job per pod, never restarted, TTL set), what each Job's pod is doing, why a
pod cannot start, and ``plan``: pending, starting and running-but-not-leased pods are
capacity already on the way (KEDA ScaledJob's double creation, kedacore/keda#6157, #7329)."""

from __future__ import annotations

from typing import Any

import pytest

from kubeq_operator import jobpods
from kubeq_operator.jobpods import DONE, PENDING, RUNNING, JobView, job_names, plan
from kubeq_operator.names import pool_job_prefix
from kubeq_operator.spec import SpecError, parse
from tests.operator.test_pool_spec import spec

RENDER = {"name": "render", "mode": "Job", "concurrency": 4, "scaling": {"maxReplicas": 3}}


def test_mode_job_is_parsed_with_its_ttl_and_refused_where_it_does_not_belong() -> None:
    pool = parse(spec(RENDER)).pools[0]
    assert (pool.mode, pool.job_ttl_seconds) == ("Job", 300)
    ttl = parse(spec({**RENDER, "job": {"ttlSecondsAfterFinished": 30}})).pools[0]
    assert ttl.job_ttl_seconds == 30
    for doc, field in [
        ({"name": "a", "job": {"ttlSecondsAfterFinished": 30}}, "spec.pools[0].job"),
        ({**RENDER, "job": {"ttl": 30}}, "spec.pools[0].job.ttl"),
        ({**RENDER, "job": {"ttlSecondsAfterFinished": -1}}, "spec.pools[0].job"),
        ({**RENDER, "mode": "CronJob"}, "spec.pools[0].mode"),
    ]:
        with pytest.raises(SpecError) as e:
            parse(spec(doc))
        assert field in str(e.value), str(e.value)


def test_the_job_runs_one_job_per_pod_never_restarts_and_is_removed_after_its_ttl() -> None:
    s = parse(spec({**RENDER, "job": {"ttlSecondsAfterFinished": 45}}))
    job = jobpods.build("shop", "ns", s, s.pools[0])
    assert job["kind"] == "Job"
    assert job["spec"]["ttlSecondsAfterFinished"] == 45
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    cmd = pod["containers"][0]["command"]
    assert cmd[-3:] == ["--burst", "--max-jobs", "1"]
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--queue"] == [
        "default@render",
        "high@render",
    ]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "pool-job"  # no Deployment selects it
    assert labels["kubeq.dev/pool"] == "render"
    assert pool_job_prefix("shop", "render") == "shop-render-job-"
    long = pool_job_prefix("x" * 100, "render")
    assert len(long + "99999-9999999999") <= 63 and long.endswith("-job-")


def pod(job: str, phase: str = "Pending", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{job}-p",
            "ownerReferences": [{"kind": "Job", "name": job}],
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "status": {"phase": phase, **status},
    }


def job(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": {}}, "status": status}


def test_each_job_is_pending_running_or_done_and_a_stuck_pod_says_why() -> None:
    unschedulable = {
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1"}
        ]
    }
    pull = {
        "containerStatuses": [
            {"name": "worker", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "x"}}}
        ]
    }
    views = jobpods.classify(
        [job("a"), job("b"), job("c"), job("d"), job("e", succeeded=1), job("f")],
        [
            pod("b", **unschedulable),
            pod("c", **pull),
            pod("d", "Running"),
            pod("e", "Succeeded"),
            pod("f", "Pending", containerStatuses=[{"state": {"waiting": {"reason": "x"}}}]),
        ],
    )
    assert [(v.name, v.state) for v in views] == [
        ("a", PENDING),  # no pod yet
        ("b", PENDING),
        ("c", PENDING),
        ("d", RUNNING),
        ("e", DONE),
        ("f", PENDING),
    ]
    assert views[1].stuck == ("Unschedulable", "0/1")
    assert views[2].stuck == ("ImagePullBackOff", "container worker: x")
    assert views[0].stuck is None and views[5].stuck is None  # ContainerCreating is normal


def views(pending: int = 0, running: int = 0, done: int = 0) -> list[JobView]:
    out = [JobView(f"p{i}", PENDING, None, "h") for i in range(pending)]
    out += [JobView(f"r{i}", RUNNING, f"r{i}-pod", "h") for i in range(running)]
    return out + [JobView(f"d{i}", DONE, f"d{i}-pod", "h") for i in range(done)]


def test_pending_pods_count_as_capacity_so_no_pass_creates_more_jobs_than_ready_jobs() -> None:
    # kedacore/keda#6157: 5 jobs queued, their pods Pending (nothing schedules them): after
    # the first pass every later pass creates nothing, however many passes run
    assert plan(5, views(), {}, 100) == 5
    for _ in range(100):
        assert plan(5, views(pending=5), {}, 100) == 0
    # kedacore/keda#7329: pods running but not yet leased their job still count; a pod
    # that leased its job is no longer on the way (its job left the ready count)
    assert plan(5, views(running=5), {}, 100) == 0
    leased = {"r0-pod": 1, "r1-pod": 1}
    assert plan(3, views(running=5), leased, 100) == 0
    assert plan(4, views(running=5), leased, 100) == 1  # a 6th job arrived
    assert plan(5, views(pending=2, done=9), {}, 100) == 3  # finished Jobs count for nothing


def test_max_replicas_caps_running_plus_pending_jobs() -> None:
    assert plan(10, views(), {}, 3) == 3
    assert plan(7, views(running=3), {f"r{i}-pod": 1 for i in range(3)}, 3) == 0
    assert plan(7, views(pending=1, running=2), {f"r{i}-pod": 1 for i in range(2)}, 3) == 0
    assert plan(7, views(running=2, done=1), {f"r{i}-pod": 1 for i in range(2)}, 3) == 1


def test_job_names_are_derived_from_the_listed_state_so_two_operators_collide() -> None:
    """Two operators acting on one snapshot (a peering handover) name the same Jobs: the API
    server refuses the second create, so no job gets two Jobs."""
    p = "tq-render-job-"
    assert job_names(p, [], [], 3, 3) == [f"{p}0-1", f"{p}1-1", f"{p}2-1"]
    # slot 1 busy; slot 0's and 2's Jobs finished (kept until their TTL): next numbers
    listed = [JobView(f"{p}0-1", DONE, None, "h"), JobView(f"{p}1-1", RUNNING, "x", "h")]
    existing = [f"{p}0-1", f"{p}1-1", f"{p}2-4", f"{p}2-2", "other-job"]
    assert job_names(p, existing, listed, 3, 3) == [f"{p}0-2", f"{p}2-5"]
    assert job_names(p, existing, listed, 1, 3) == [f"{p}0-2"]
    # every slot held: none, whatever is wanted
    held = [JobView(f"{p}{i}-1", PENDING, None, "h") for i in range(3)]
    assert job_names(p, [v.name for v in held], held, 2, 3) == []
