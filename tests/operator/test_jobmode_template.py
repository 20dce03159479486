"""A Job-mode pool's template change replaces only Jobs whose pod cannot hold a job (pure):
a pod whose node stopped reporting it (phase ``Unknown``) may still run its job, so its Job
counts as running, never as a pending Job made from an old template."""

from __future__ import annotations

from kubeq_operator import jobpods
from tests.operator.test_jobpods import job, pod


def test_a_pod_of_unknown_phase_may_run_its_job_so_its_job_is_running() -> None:
    (view,) = jobpods.classify([job("a")], [pod("a", "Unknown")])
    assert view.state == jobpods.RUNNING and view.stuck is None
