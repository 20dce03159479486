"""The fleet tables of bench/README.md, made from a results JSON alone (bench/report.py calls
these for its ``swarm`` and ``idlecost`` blocks): what N workers cost Redis (bench/swarm.py)
and what one idle worker costs it (bench/idle_cost.py). Standard library only."""

from __future__ import annotations

from typing import Any


def swarm(res: dict[str, Any], path: str) -> str:
    """One row per target and N: Redis's figures idle and busy."""
    out = [
        f"Results: `{path}`; {res['machine']}. Per worker: the idle figures divided by N; "
        "memory per worker: the idle `used_memory` less the empty server's, divided by N.",
        "",
        "| Redis | workers | idle: commands/s | per worker | idle: Redis CPU | Redis memory "
        "| per worker | connections | busy: commands/s (jobs/s) | busy: Redis CPU "
        "| enqueue -> start p50 / p99 | slowest renewal / longest renewal gap |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        i, b, n = r["idle"], r["busy"], r["workers"]
        per_mem = (i["memory"] - r["empty_memory"]) / n
        shared = " (shared clients)" if r.get("shared_client") else ""
        out.append(
            f"| {r['target']} | {n:,}{shared} | {i['commands_per_s']:,.0f} | "
            f"{i['commands_per_s'] / n:.2f} | {i['cpu_percent']:.1f}% | "
            f"{i['memory'] / 2**20:,.1f} MB | {per_mem / 1024:.1f} KB | {i['clients']:,.0f} | "
            f"{b['commands_per_s']:,.0f} ({r['rate']:g}) | {b['cpu_percent']:.1f}% | "
            f"{_ms(r['start_p50_ms'])} / {_ms(r['start_p99_ms'])} | "
            f"{_ms(r['slowest_renewal_ms'])} / {r['longest_renewal_gap_s']} s |"
        )
    return "\n".join(out) + "\n"


def idlecost(res: dict[str, Any], path: str) -> str:
    """Before and after: what one idle worker costs Redis, and its enqueue -> start."""
    out = [
        f"Results: `{path}`.",
        "",
        "| one idle `kubeq worker` (one queue) | commands run/s (INFO commandstats) "
        "| commands sent/s | round trips/s | enqueue -> start p50 / p99 | machine |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label in ("before", "after"):
        r = res.get(label)
        if r is None:
            continue
        out.append(
            f"| {label} ({r['code']}) | {r['commands_per_s']:.2f} | {r['sent_per_s']:.2f} | "
            f"{r['round_trips_per_s']:.2f} | {_ms(r['latency_p50_ms'])} / "
            f"{_ms(r['latency_p99_ms'])} | {r['machine']} |"
        )
    return "\n".join(out) + "\n"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"
