"""The fleet tables of bench/README.md, made from a results JSON alone (bench/report.py calls
these for its ``swarm`` and ``idlecost`` blocks): what N workers cost Redis (bench/swarm.py)
and what one idle worker costs it (bench/idle_cost.py). Standard library only."""

from __future__ import annotations

from typing import Any


def swarm(res: dict[str, Any], path: str) -> str:
    """One row per target and N: Redis's figures idle and busy."""
    out = [
        f"Results: `{path}`; {res['machine']}. Per worker: the idle figures divided by N; "
        "memory per worker: the idle `used_memory` less the empty server's, divided by N. "
        + res.get("note", ""),
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
        if r["live_at_start"] < n:  # the ramp's time ran out first
            shared += f", {r['live_at_start']:,} live when measured"
        if r.get("live_at_end", n) < n:  # the harness's loops fell behind their beats
            shared += f", {r['live_at_end']:,} live at the end"
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
    ab = res.get("latency_ab")
    if ab:
        out += [
            "",
            f"Enqueue -> start on an idle worker, the two codes alternated {ab['reps']} times "
            f"({ab['jobs']} jobs each, median of the runs; {ab['machine']} at the end): before "
            + (f"({ab['before_code']}) " if ab.get("before_code") else "")
            + f"{_ms(ab['before_p50_ms'])} / {_ms(ab['before_p99_ms'])}, after "
            f"{_ms(ab['after_p50_ms'])} / {_ms(ab['after_p99_ms'])} (p50 / p99).",
        ]
    return "\n".join(out) + "\n"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def capacity(res: dict[str, Any], path: str) -> str:
    """docs/scaling.md's capacity figures, derived from the swarm's rows (one redis-server)."""
    rows = [r for r in res["rows"] if r["target"] == "redis" and r["workers"] >= 100]
    if not rows:
        return f"Results: `{path}` has no single-Redis run of 100 workers or more.\n"
    idle = [r["idle"]["commands_per_s"] / r["workers"] for r in rows]
    own = [r for r in rows if not r.get("shared_client")]
    biggest = max(own or rows, key=lambda r: r["workers"])
    mem = (biggest["idle"]["memory"] - biggest["empty_memory"]) / biggest["workers"]
    conns = biggest["idle"]["clients"] / biggest["workers"]
    per_job = [
        (r["busy"]["commands_per_s"] - r["idle"]["commands_per_s"]) / r["rate"] for r in rows
    ]
    sizes = ", ".join(f"{r['workers']:,}" for r in rows)
    # Redis CPU per command, from the busiest window measured (the most commands a second)
    top = max(rows, key=lambda r: r["busy"]["commands_per_s"])
    us = 1e4 * top["busy"]["cpu_percent"] / max(1.0, top["busy"]["commands_per_s"])
    out = [
        f"Derived from `{path}` ({res['machine']}) by bench/fleet_report.py; one redis-server.",
        "",
        "| figure | value | from |",
        "|---|---:|---|",
        f"| commands/s per idle worker | {max(idle):.2f} | the idle windows, N = "
        f"{sizes} (the highest) |",
        f"| Redis memory per idle worker | {mem / 1024:.1f} KB | {biggest['workers']:,} workers, "
        "`used_memory` less the empty server's: its connections' buffers, its presence and "
        "its document |",
        f"| connections per worker | {conns:.1f} | `connected_clients` / N at "
        f"{biggest['workers']:,} workers |",
        f"| commands per job | {max(per_job):.0f} | (busy - idle commands/s) / jobs/s, the "
        "highest; each job held its worker 2.5 s, so this includes that worker's upkeep while "
        "busy (its heartbeats: `c_busy` below) |",
        f"| Redis CPU per command | {us:.1f} us | an upper bound: the busiest window, "
        f"{top['busy']['commands_per_s']:,.0f} commands/s at {top['busy']['cpu_percent']:.1f}% "
        "of a core, Redis's own background work included |",
    ]
    return "\n".join(out) + "\n"
