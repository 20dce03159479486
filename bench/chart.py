"""Draw bench/results/<date>.png from bench/results/<date>.json (runs in the tools venv).

python bench/chart.py RESULTS.json OUT.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {
    "kubeq": "#2b6cb0",
    "rq": "#c53030",
    "celery": "#2f855a",
    "arq": "#b7791f",
    "dramatiq": "#6b46c1",
}


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    with open(src) as f:
        data = json.load(f)
    med = data["medians"]
    systems = list(med)
    panels = [
        ("Enqueue, one call per job (jobs/s)", "enqueue_single"),
        ("Enqueue, bulk API (jobs/s)", "enqueue_bulk"),
        ("Drain, 1 process, default (jobs/s)", "drain_default"),
        ("Drain, 1 process, best settings (jobs/s)", "drain_best"),
        ("Enqueue -> start, p50 (ms, lower is better)", "latency_p50"),
        ("Enqueue -> start, p99 (ms, lower is better)", "latency_p99"),
        ("Drain, 4 processes, best settings (jobs/s)", "drain_4procs"),
        ("Redis bytes per waiting job (lower is better)", "mem_waiting"),
        ("Redis bytes per finished job kept (lower is better)", "mem_finished"),
        ("Worker MB idle, PSS (lower is better)", "worker_idle_mb"),
        ("Worker MB draining, PSS (lower is better)", "worker_drain_mb"),
        ("Enqueue, one awaited call (asyncio, jobs/s)", "enqueue_async"),
    ]
    fig, axes = plt.subplots(3, 4, figsize=(20, 12))
    for ax, (title, key) in zip(axes.flat, panels, strict=True):
        vals = [med[s].get(key) or 0 for s in systems]
        bars = ax.bar(systems, vals, color=[COLORS.get(s, "#718096") for s in systems])
        ax.set_title(title, fontsize=10)
        if key.startswith("latency"):
            ax.set_yscale("log")
        for b, v in zip(bars, vals, strict=True):
            label = "n/a" if not v else (f"{v:,.0f}" if v >= 10 else f"{v:.1f}")
            ax.annotate(
                label,
                (b.get_x() + b.get_width() / 2, max(v, 1e-9)),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.tick_params(axis="x", labelsize=9)
    m = data["machine"]
    fig.suptitle(
        f"kubeq vs RQ, Celery, arq, Dramatiq: median of {data['config']['reps']} runs, "
        f"{data['date'][:10]}\n{m['cpu']}, {m['cores']} cores (shared), "
        f"{m['redis_server'].split(' sha')[0]}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
