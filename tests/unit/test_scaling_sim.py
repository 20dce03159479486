"""The autoscaling simulator (bench/scaling_sim.py) replays traces through the real
policy: kubeq with a wait target and every other setting at its default must beat KEDA + HPA
as its users tune it, on every trace, with no more replica-seconds and no job interrupted by a
scale-in. The committed results (bench/results/scaling/) must be what the simulator produces
now, and bench/README.md must say what they say. It also checks the models do what the
documentation of each says on a trace small enough to reason about by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubeq import defaults
from tests.support.modules import load_bench

ROOT = Path(__file__).resolve().parents[2]


RESULTS = ROOT / "bench" / "results" / "scaling"
FIGURES = ("p50", "p95", "max", "replica_seconds", "scale_events", "interrupted", "unfinished")


sim = load_bench("scaling_sim")
report = load_bench("scaling_report")
TRACES = {t.name: t for t in sim.traces()}
STORED = {(r.trace, r.system): r for r in report.load_results(RESULTS / "scaling-sim.json")}


@pytest.mark.parametrize("name", sorted(TRACES))
def test_kubeq_beats_tuned_keda_on_every_trace(name: str) -> None:
    world = sim.World()
    results = {s.name: sim.simulate(TRACES[name], s, world, seed=1) for s in sim.systems(world)}
    kubeq = results[sim.DEFAULTS_SYSTEM]
    keda = results[sim.TUNED_KEDA_SYSTEM]
    assert kubeq.unfinished == 0 and keda.unfinished == 0
    assert kubeq.p95 < keda.p95, (kubeq, keda)
    assert kubeq.replica_seconds <= keda.replica_seconds, (kubeq, keda)
    assert kubeq.interrupted == 0
    # the committed results are these (run `make scaling-sim` after changing the policy)
    for system, r in results.items():
        stored = STORED[(name, system)]
        assert [getattr(stored, f) for f in FIGURES] == [getattr(r, f) for f in FIGURES], system


def test_the_readme_says_what_the_results_say() -> None:
    readme = (ROOT / "bench" / "README.md").read_text()
    table = report.block(readme, report.TABLE_BEGIN, report.TABLE_END)
    assert table == report.table_block(list(STORED.values())).strip("\n")
    assert "NOT BETTER" not in table
    rows = json.loads((RESULTS / "scaling-sweep.json").read_text())
    sweep = report.block(readme, report.SWEEP_BEGIN, report.SWEEP_END)
    assert sweep == report.sweep_table(rows).strip("\n")
    defaults_row = next(r for r in rows if r["window"] == defaults.STABILIZATION_SECONDS)
    assert defaults_row["wins"] == defaults_row["runs"]  # the default window, every seed


def test_the_keda_model_follows_its_documented_timings() -> None:
    """One burst of 40 x 1 s jobs at t=0.5 into an idle queue: KEDA's first poll (t=1)
    activates 1 replica; the HPA acts on its own 15 s grid and grows at most max(100 %, +4)
    per step (1 -> 5); 300 s after the last poll that saw jobs, the cooldown takes it to
    zero."""
    world = sim.World(startup=5.0)
    burst = sim.Trace("t", "t", 900, lambda rng: [sim.Job(0.5, 1.0) for _ in range(40)])
    r = sim.simulate(burst, sim.KedaHpa("keda", sim.KedaSettings(), world), world, seed=1)
    replicas = dict(zip(r.series["t"], r.series["replicas"], strict=True))
    assert 1 <= replicas[10.0] <= 5
    assert max(r.series["replicas"]) == 5
    assert replicas[max(replicas)] == 0  # cooled down to zero
    zero_at = min(t for t, n in replicas.items() if t > 20 and n == 0)
    assert 300 <= zero_at <= 300 + 30 + 15


def test_the_readme_says_what_the_real_keda_run_measured() -> None:
    """bench/keda_real.py's last run (bench/results/keda-real/keda-real.json) is the table in
    bench/README.md, and it did measure KEDA's HPA half (the HPA read KEDA's metric)."""
    real = load_bench("keda_real")
    out = json.loads((ROOT / "bench" / "results" / "keda-real" / "keda-real.json").read_text())
    readme = (ROOT / "bench" / "README.md").read_text()
    assert report.block(readme, real.README_BEGIN, real.README_END) == real.table(out).strip("\n")
    assert any("successfully calculate a replica count" in m for m in out["hpa_metric"])
    assert out["kubeq"]["handed_back"] == 0
