"""The simulator's results as they appear in bench/README.md, and the scale-down sweep.

Why apart from bench/scaling_sim.py: the simulator is the world and the autoscalers; this is
what is said about them. The README's figures are written here from the results, between
markers (``make scaling-sim``), so no figure in it is ever copied by hand, and
``tests/unit/test_scaling_sim.py`` checks that the README says what the results files say.

It is also the command (``make scaling-sim``): it runs the simulator, then the sweep, then
Job mode against KEDA ScaledJob (bench/scaling_jobs.py, ``scaling-jobs.json``), and writes the
README's tables (``--docs FILE``: the ``bench:scaledjob`` blocks of FILE too, via
bench/report.py). The sweep answers "why these scale-down defaults": kubeq with a
wait target and each scale-down window (the rest at its defaults) against KEDA as its users
tune it, on every trace and several seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import report as blocks
import scaling_jobs
import scaling_sim as sim

TABLE_BEGIN = "<!-- scaling-sim table: written by `make scaling-sim`, do not edit -->"
TABLE_END = "<!-- end of scaling-sim table -->"
SWEEP_BEGIN = "<!-- scaling-sweep table: written by `make scaling-sim`, do not edit -->"
SWEEP_END = "<!-- end of scaling-sweep table -->"
SWEEP_WINDOWS = (10.0, 15.0, 20.0, 30.0, 60.0)
SWEEP_SEEDS = (1, 2, 3, 4, 5)


def verdict(results: list[sim.Result]) -> str:
    """One line per trace: kubeq with its defaults against KEDA as its users tune it."""
    by = {(r.trace, r.system): r for r in results}
    lines = []
    for trace in dict.fromkeys(r.trace for r in results):
        k, e = by.get((trace, sim.DEFAULTS_SYSTEM)), by.get((trace, sim.TUNED_KEDA_SYSTEM))
        if k is None or e is None:
            continue
        beats = k.p95 < e.p95 and k.replica_seconds <= e.replica_seconds
        said = "lower wait for no more replica-seconds" if beats else "NOT BETTER"
        lines.append(
            f"- {trace}: p95 wait {k.p95:.1f} s vs {e.p95:.1f} s, replica-s "
            f"{k.replica_seconds:.0f} vs {e.replica_seconds:.0f}, interrupted {k.interrupted} vs "
            f"{e.interrupted}: {said}"
        )
    return "\n".join(lines) + "\n"


def sweep(world: sim.World) -> list[dict[str, Any]]:
    """For each scale-down window: over every trace and seed, how often kubeq (wait target,
    other settings default) beats tuned KEDA, its worst cost and wait ratios to KEDA, and the
    steady trace's p95 and scale events (where a short window's flapping shows)."""
    keda = {
        (t.name, seed): sim.simulate(t, sim.KedaHpa("k", sim.TUNED_KEDA, world), world, seed)
        for t in sim.traces()
        for seed in SWEEP_SEEDS
    }
    rows = []
    for window in SWEEP_WINDOWS:
        spec = replace(sim.default_wait_spec(world), stabilization_seconds=window)
        wins, cost, wait, steady, events = 0, [], [], [], []
        for t in sim.traces():
            for seed in SWEEP_SEEDS:
                r = sim.simulate(t, sim.Kubeq("k", spec, world), world, seed)
                e = keda[(t.name, seed)]
                wins += r.p95 < e.p95 and r.replica_seconds <= e.replica_seconds
                cost.append(r.replica_seconds / e.replica_seconds)
                wait.append(r.p95 / e.p95 if e.p95 else 0.0)
                if t.name == "steady":
                    steady.append(r.p95)
                    events.append(r.scale_events)
        rows.append(
            {
                "window": window,
                "wins": wins,
                "runs": len(cost),
                "worst_cost_ratio": round(max(cost), 3),
                "worst_p95_ratio": round(max(wait), 3),
                "steady_p95_median": round(statistics.median(steady), 2),
                "steady_p95_max": round(max(steady), 2),
                "steady_events_median": statistics.median(events),
            }
        )
        print(f"sweep window {window:g}s: {rows[-1]}", flush=True)
    return rows


def sweep_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scale-down window s | beats tuned KEDA (trace x seed) | worst replica-s / KEDA's "
        "| worst p95 / KEDA's | steady p95 s, median (max) over seeds | steady scale events "
        "(median) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['window']:g} | {r['wins']} of {r['runs']} | {r['worst_cost_ratio']:.2f} | "
            f"{r['worst_p95_ratio']:.2f} | {r['steady_p95_median']:.1f} "
            f"({r['steady_p95_max']:.1f}) | {r['steady_events_median']:g} |"
        )
    return "\n".join(lines) + "\n"


def _between(text: str, begin: str, end: str, body: str, path: Path) -> str:
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: add the markers {begin!r} and {end!r} first")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}{end}{tail}"


def table_block(results: list[sim.Result]) -> str:
    return (
        f"{sim.table(results)}\n{sim.DEFAULTS_SYSTEM} (every setting default but the wait "
        f"target) against {sim.TUNED_KEDA_SYSTEM}:\n\n{verdict(results)}"
    )


def write_readme(path: Path, results: list[sim.Result], rows: list[dict[str, Any]] | None) -> None:
    """Rewrite the tables between their markers in ``path`` (the sweep's only if given)."""
    text = _between(path.read_text(), TABLE_BEGIN, TABLE_END, table_block(results), path)
    if rows is not None:
        text = _between(text, SWEEP_BEGIN, SWEEP_END, sweep_table(rows), path)
    path.write_text(text)


def block(text: str, begin: str, end: str) -> str:
    """What ``text`` holds between ``begin`` and ``end`` (for the README check)."""
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def load_results(path: Path) -> list[sim.Result]:
    """The results a previous ``--out`` wrote (scaling-sim.json)."""
    return [sim.Result(**r) for r in json.loads(path.read_text())["results"]]


def main() -> int:
    ap = argparse.ArgumentParser(description=sim.__doc__.splitlines()[0] if sim.__doc__ else None)
    ap.add_argument("--out", type=Path, default=None, help="write scaling-sim.json/.md here")
    ap.add_argument("--only", default="", help="comma-separated trace names")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--startup", type=float, default=sim.World.startup)
    ap.add_argument("--readme", type=Path, default=None, help="rewrite the tables in this file")
    ap.add_argument("--sweep", action="store_true", help="also sweep the scale-down window")
    ap.add_argument("--docs", type=Path, action="append", default=[], help="its Job-mode table")
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s} or None
    world = sim.World(startup=args.startup)
    results = sim.run(args.out, only, args.seed, world)
    rows = sweep(world) if args.sweep else None
    if rows is not None and args.out is not None:
        (args.out / "scaling-sweep.json").write_text(json.dumps(rows))
    if args.readme is not None:
        if rows is None and args.out is not None and (args.out / "scaling-sweep.json").exists():
            rows = json.loads((args.out / "scaling-sweep.json").read_text())
        write_readme(args.readme, results, rows)
    scaling_jobs.run(args.out, args.seed)
    for path in [p for p in [args.readme, *args.docs] if p is not None]:
        path.write_text(blocks.rewrite(path.read_text(), kinds={"scaledjob"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
