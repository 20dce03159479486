"""Job mode, the pure part of a failed worker pod: why it failed (exit code, reason, the last
line of its log as the termination message), evictions not counted as the pool's failures,
and the back-off that keeps a failing pool from making a new Job for the same job each pass.
"""

from __future__ import annotations

from typing import Any

from kubeq_operator import jobpods
from kubeq_operator.jobpods import DONE, JobView, backoff_seconds, gate, plan
from kubeq_operator.spec import parse
from tests.operator.test_jobpods import RENDER, job, pod
from tests.operator.test_pool_spec import spec

USAGE = "Usage: kubeq worker [OPTIONS]\n\nError: cannot load tasks from 'shop': No module\n"


def exited(code: int, reason: str, message: str = "") -> dict[str, Any]:
    term = {"exitCode": code, "reason": reason, "message": message}
    return {"containerStatuses": [{"name": "worker", "state": {"terminated": term}}]}


def test_a_failed_pod_says_its_exit_code_and_last_log_line_and_an_eviction_is_no_failure() -> None:
    evicted = {"conditions": [{"type": "DisruptionTarget", "status": "True"}], **exited(0, "x")}
    views = jobpods.classify(
        [job("a", failed=1), job("b", failed=1), job("c", succeeded=1), job("d", failed=1)],
        [
            pod("a", "Failed", **exited(2, "Error", USAGE)),
            pod("b", "Failed", **exited(137, "OOMKilled")),
            pod("c", "Succeeded", **exited(0, "Completed")),
            pod("d", "Failed", **evicted),
        ],
    )
    assert [v.state for v in views] == [DONE] * 4
    assert views[0].failed == (
        "Error",
        "container worker exited with exit code 2 (Error): "
        "Error: cannot load tasks from 'shop': No module",
    )
    assert views[1].failed == (
        "OOMKilled",
        "container worker exited with exit code 137 (OOMKilled)",
    )
    assert views[2].failed is None and views[3].failed is None
    # a failed Job whose pod is gone still says why
    gone = jobpods.classify([job("e", conditions=[_cond("Failed", "BackoffLimitExceeded")])], [])
    assert gone[0].failed == ("BackoffLimitExceeded", "m")


def _cond(type_: str, reason: str) -> dict[str, str]:
    return {"type": type_, "status": "True", "reason": reason, "message": "m"}


def test_the_job_pod_leaves_its_last_log_lines_as_its_termination_message() -> None:
    s = parse(spec(RENDER))
    worker = jobpods.build("shop", "ns", s, s.pools[0])["spec"]["template"]["spec"]
    assert worker["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_after_failed_pods_one_job_at_a_time_after_a_growing_back_off() -> None:
    assert [backoff_seconds(n) for n in range(7)] == [0, 10, 20, 40, 80, 160, 300]
    assert backoff_seconds(10_000) == 300
    done = [JobView("d", DONE, "d-pod", "h", failed=("Error", "x"))]
    never = float("inf")
    # without failures, as planned: 5 ready jobs, 5 Jobs
    assert gate(plan(5, done, {}, 10), 0, 0.0, 0.0) == 5
    # 1 failure: nothing for 10 s, then one Job
    assert gate(5, 1, 9.9, never) == 0
    assert gate(5, 1, 10.0, never) == 1
    # the next one 10 s after that Job was made, even if it runs (healthy) and never fails
    assert gate(4, 1, 1e6, 9.9) == 0 and gate(4, 1, 1e6, 10.0) == 1
    assert gate(5, 3, 39.0, never) == 0 and gate(5, 3, 40.0, never) == 1
    assert gate(0, 0, 0.0, 0.0) == 0
