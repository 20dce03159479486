"""Draw one PNG per trace from bench/scaling_sim.py's JSON: replicas and oldest wait over time
for every system. Runs in the bench tools venv (matplotlib), not the project's:
``make scaling-sim`` does both steps."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(out: Path) -> int:
    doc = json.loads((out / "scaling-sim.json").read_text())
    by_trace: dict[str, list[dict]] = {}
    for r in doc["results"]:
        by_trace.setdefault(r["trace"], []).append(r)
    for trace, results in by_trace.items():
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
        for r in results:
            label = (
                f"{r['system']} (p95 {r['p95']:.0f} s, {r['replica_seconds'] / 3600:.1f} "
                f"replica-h, {r['interrupted']} interrupted)"
            )
            minutes = [t / 60 for t in r["series"]["t"]]
            top.step(minutes, r["series"]["replicas"], where="post", label=label, lw=1)
            bottom.plot(minutes, r["series"]["oldest"], lw=1)
        top.set_ylabel("replicas")
        bottom.set_ylabel("oldest wait (s)")
        bottom.set_xlabel("minutes")
        top.set_title(doc["traces"][trace], fontsize=10)
        top.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        fig.savefig(out / f"scaling-{trace}.png", dpi=90)
        plt.close(fig)
        print(out / f"scaling-{trace}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
