"""The Job-mode simulator (bench/scaling_jobs.py): kubeq's Job mode, driven by the operator's
own ``jobpods.plan``, never creates more Jobs than jobs nor more pods than ``maxReplicas``;
the model of KEDA ScaledJob over-creates where KEDA's issues say it does (kedacore/keda#6157:
3 items, pods slower to start than the 5 s polling interval, "bringing the total to 6";
kedacore/keda#7329: ``accurate`` ignores pending Jobs once the queue plus running Jobs
exceed ``maxReplicaCount``). The committed results are what the simulator gives now."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from kubeq_operator import jobpods
from tests.support.modules import load_bench

ROOT = Path(__file__).resolve().parents[2]


jobs_sim = load_bench("scaling_jobs")
SCENARIOS = {s.name: s for s in jobs_sim.scenarios()}
RESULTS = ROOT / "bench" / "results" / "scaling" / "scaling-jobs.json"


def scenario(n: int, pending: float, boot: float, max_jobs: int = 100, later: int = 0) -> Any:
    """``n`` one-minute jobs at t=0 (and ``later`` more at t=3)."""

    def arrivals(rng: Any) -> list[Any]:
        first = [jobs_sim.Job(0.0, 60.0) for _ in range(n)]
        return first + [jobs_sim.Job(3.0, 60.0) for _ in range(later)]

    return jobs_sim.Scenario("t", "t", max_jobs, pending, boot, arrivals)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kubeq_never_creates_more_jobs_than_jobs(name: str, seed: int) -> None:
    s = SCENARIOS[name]
    r = jobs_sim.simulate(s, jobs_sim.KubeqJobs("kubeq"), seed)
    assert r.unfinished == 0
    assert r.created == r.jobs and r.idle == 0 and r.wasted_pod_seconds == 0
    assert r.peak_pods <= s.max_jobs


def test_the_6157_scenario_doubles_scaledjob_and_not_kubeq() -> None:
    """#6157's steps: pollingInterval 5, strategy accurate, 3 items, pods that spend at least
    10 s Pending while KEDA logs no pending Job: the next poll adds 3 more (6 in all). With
    the documented pending count, the same happens to pods that run but take 10 s to start
    their worker. kubeq's Job mode makes 3 either way."""
    keda = jobs_sim.ScaledJob("keda", "accurate", 5.0, jobs_sim.NONE)
    as_reported = jobs_sim.simulate(scenario(3, pending=10.0, boot=0.0), keda)
    assert (as_reported.created, as_reported.idle) == (6, 3)
    documented = jobs_sim.ScaledJob("keda", "accurate", 5.0, jobs_sim.PHASE)
    slow_worker = jobs_sim.simulate(scenario(3, pending=0.0, boot=10.0), documented)
    assert slow_worker.created > 3 and slow_worker.idle == slow_worker.created - 3
    for pending, boot in ((10.0, 0.0), (0.0, 10.0), (60.0, 20.0)):
        kubeq = jobs_sim.simulate(scenario(3, pending, boot), jobs_sim.KubeqJobs("kubeq"))
        assert (kubeq.created, kubeq.idle) == (3, 0)


def test_the_7329_formula_and_scenario() -> None:
    """#7329: maxReplicaCount 10, 5 Jobs all pending, 8 items queued (the 5 pending pods will
    take 5 of them): ``accurate`` creates maxReplicaCount - running = 5, 2 more than the 3
    needed, even though it counts the pending Jobs (pendingPodConditions or not); kubeq's
    ``plan`` on the same state creates 3."""
    assert jobs_sim.scaledjob_creates("accurate", 8, running=5, pending=5, max_count=10) == 5
    views = [jobpods.JobView(f"j{i}", jobpods.PENDING, f"p{i}", "h") for i in range(5)]
    assert jobpods.plan(8, views, {}, 10) == 3
    s = scenario(5, pending=60.0, boot=5.0, max_jobs=10, later=3)
    for rule in (jobs_sim.PHASE, jobs_sim.READY):
        r = jobs_sim.simulate(s, jobs_sim.ScaledJob("keda", "accurate", 5.0, rule))
        assert (r.created, r.idle) == (10, 2)
    kubeq = jobs_sim.simulate(s, jobs_sim.KubeqJobs("kubeq"))
    assert (kubeq.created, kubeq.idle) == (8, 0)


def test_the_strategies_follow_their_documented_formulas() -> None:
    """keda.sh's ScaledJob page: the maxReplicaCount table (queue 10, max 3, running 0 -> 3;
    running 1 -> 2 with the default strategy), and each strategy on one state."""
    creates = jobs_sim.scaledjob_creates
    assert creates("default", 10, running=0, pending=0, max_count=3) == 3
    assert creates("default", 10, running=1, pending=0, max_count=3) == 2
    assert creates("default", 10, running=0, pending=0, max_count=100) == 10
    assert creates("custom", 10, running=4, pending=0, max_count=100) == 10 - 1 - 2
    assert creates("custom", 1, running=0, pending=0, max_count=100) == 0  # a lone job: none
    assert creates("accurate", 10, running=4, pending=2, max_count=100) == 8
    assert creates("eager", 3, running=3, pending=0, max_count=10) == 3
    assert creates("eager", 6, running=8, pending=1, max_count=10) == 1
    assert creates("accurate", 0, running=0, pending=0, max_count=10) == 0  # not active
    with pytest.raises(ValueError, match=r"scalingStrategy\.strategy"):
        creates("greedy", 1, running=0, pending=0, max_count=1)


def test_the_committed_results_are_what_the_simulator_gives() -> None:
    """bench/results/scaling/scaling-jobs.json (rendered into bench/README.md and
    docs/scaling.md; tests/unit/test_bench_report.py checks those blocks) is this run's."""
    stored = json.loads(RESULTS.read_text())
    now = [asdict(r) for r in jobs_sim.run(None, stored["seed"])]
    assert stored["results"] == now
