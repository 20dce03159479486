"""The Job-mode simulator's table (bench/scaling_jobs.py's results, kubeq against KEDA
ScaledJob), as bench/report.py renders it into the ``bench:scaledjob`` blocks of
bench/README.md and docs/scaling.md. Standard library only, like bench/report.py."""

from __future__ import annotations

from typing import Any

KUBEQ = "kubeq Job mode"


def _drain(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.0f}"


def render(res: dict[str, Any], path: str) -> str:
    rows = res["results"]
    lines = [
        f"Seed {res['seed']}; ScaledJob's pollingInterval {res['keda_polling_seconds']:g} s "
        "unless the row names another, kubeq's pollSeconds 1 s. Scenarios:",
        "",
        *(f"- **{name}**: {title}" for name, title in res["scenarios"].items()),
        "",
        "| scenario | system | Jobs created / jobs | idle Jobs | peak pods | drained in s "
        "| pod-s wasted | pod-s | unfinished |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['system']} | {r['created']} / {r['jobs']} | {r['idle']} | "
            f"{r['peak_pods']} | {_drain(r['drain'])} | {r['wasted_pod_seconds']:.0f} | "
            f"{r['pod_seconds']:.0f} | {r['unfinished']} |"
        )
    lines += ["", *verdict(rows)]
    return "\n".join(lines) + "\n"


def verdict(rows: list[dict[str, Any]]) -> list[str]:
    """Per scenario: kubeq's Jobs against the jobs, and the ScaledJob strategy that made the
    most idle Jobs."""
    out = []
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        mine = [r for r in rows if r["scenario"] == scenario]
        k = next(r for r in mine if r["system"] == KUBEQ)
        worst = max((r for r in mine if r["system"] != KUBEQ), key=lambda r: r["idle"])
        said = "never more Jobs than jobs" if k["created"] <= k["jobs"] else "MORE JOBS THAN JOBS"
        out.append(
            f"- {scenario}: kubeq {k['created']} Jobs for {k['jobs']} jobs ({said}), drained in "
            f"{_drain(k['drain'])} s; most idle Jobs: {worst['system']}, {worst['idle']} "
            f"({worst['wasted_pod_seconds']:.0f} pod-s wasted)"
        )
    return out
