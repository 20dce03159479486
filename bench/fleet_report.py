"""The fleet tables of bench/README.md, made from a results JSON alone (bench/report.py calls
these for its ``swarm`` and ``idlecost`` blocks): what N workers cost Redis (bench/swarm.py)
and what one idle worker costs it (bench/idle_cost.py). Standard library only."""

from __future__ import annotations

from typing import Any


def swarm(res: dict[str, Any], path: str) -> str:
    """One row per target and N: Redis's figures idle and busy."""
    out = [
        f"Results: `{path}`; {res['machine']}"
        + (
            f" (and earlier runs: {'; '.join(res['runs'][:-1])})"
            if len(res.get("runs", [])) > 1
            else ""
        )
        + ". Per worker: the idle figures divided by N; memory per worker: the idle "
        "`used_memory` less the empty server's, divided by N; on the cluster the figures are "
        "summed over the masters, and the busiest master's connections and CPU are given too. "
        "Jobs: how many workers started one, and the most one worker started. "
        + res.get("note", ""),
        "",
        "| Redis | workers | idle: commands/s | per worker | idle: Redis CPU | Redis memory "
        "| per worker | connections (busiest master) | busy: commands/s (jobs/s) "
        "| busy: Redis CPU (busiest master) | enqueue -> start p50 / p99 "
        "| jobs: workers / most on one | slowest renewal / longest renewal gap | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        i, b, n = r["idle"], r["busy"], r["workers"]
        per_mem = (i["memory"] - r["empty_memory"]) / n
        shared = " (shared clients)" if r.get("shared_client") else ""
        if r["live_at_start"] < n:  # the ramp's time ran out first
            shared += f", {r['live_at_start']:,} live when measured"
        if r.get("live_at_end", n) < n:  # the harness's loops fell behind their beats
            shared += f", {r['live_at_end']:,} live at the end"
        target = r["target"] + (
            f" ({r.get('masters', 3)} masters)" if r["target"] == "cluster" else ""
        )
        fair = "-"
        if "workers_that_started_jobs" in r:
            fair = f"{r['workers_that_started_jobs']:,} / {r['most_jobs_one_worker']}"
        out.append(
            f"| {target} | {n:,}{shared} | {i['commands_per_s']:,.0f} | "
            f"{i['commands_per_s'] / n:.2f} | {i['cpu_percent']:.1f}% | "
            f"{i['memory'] / 2**20:,.1f} MB | {per_mem / 1024:.1f} KB | "
            f"{i['clients']:,.0f}{_busiest(i, 'clients', '{:,.0f}')} | "
            f"{b['commands_per_s']:,.0f} ({r['rate']:g}) | "
            f"{b['cpu_percent']:.1f}%{_busiest(b, 'cpu_percent', '{:.1f}%')} | "
            f"{_ms(r['start_p50_ms'])} / {_ms(r['start_p99_ms'])} | {fair} | "
            f"{_ms(r['slowest_renewal_ms'])} / {r['longest_renewal_gap_s']} s | "
            f"{r.get('load', '-')} |"
        )
    return "\n".join(out) + "\n"


def _busiest(window: dict[str, Any], key: str, fmt: str) -> str:
    """`` (x)``: the busiest master's figure, on a cluster whose nodes were recorded."""
    nodes = window.get("nodes", [])
    if len(nodes) < 2:
        return ""
    return " (" + fmt.format(max(nd[key] for nd in nodes)) + ")"


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


def _whole(r: dict[str, Any]) -> bool:
    """Every worker of the row was live from the first window to the last."""
    n = r["workers"]
    return bool(r["live_at_start"] >= n and r.get("live_at_end", n) >= n)


def capacity(res: dict[str, Any], path: str) -> str:
    """docs/scaling.md's capacity figures and worked example, derived from the swarm's rows
    in which every worker was live throughout (N of 100 or more)."""
    rows = [r for r in res["rows"] if r["workers"] >= 100 and _whole(r)]
    single = [r for r in rows if r["target"] == "redis"]
    if not single:
        return f"Results: `{path}` has no whole single-Redis run of 100 workers or more.\n"
    idle = max(r["idle"]["commands_per_s"] / r["workers"] for r in rows)
    own = [r for r in single if not r.get("shared_client")] or single
    biggest = max(own, key=lambda r: r["workers"])
    mem = (biggest["idle"]["memory"] - biggest["empty_memory"]) / biggest["workers"]
    conns = biggest["idle"]["clients"] / biggest["workers"]
    per_job = max(
        (r["busy"]["commands_per_s"] - r["idle"]["commands_per_s"]) / r["rate"] for r in rows
    )
    sizes = ", ".join(
        f"{r['workers']:,} ({r['target']})"
        for r in sorted(rows, key=lambda r: (r["target"], r["workers"]))
    )
    # Redis CPU per command, from the busiest window measured (the most commands a second)
    top = max(single, key=lambda r: r["busy"]["commands_per_s"])
    us = 1e4 * top["busy"]["cpu_percent"] / max(1.0, top["busy"]["commands_per_s"])
    out = [
        f"Derived from `{path}` by bench/fleet_report.py, from the rows in which every worker "
        f"was live from the first window to the last (N = {sizes}); the machine and its "
        "load are in each row (bench/README.md, The swarm).",
        "",
        "| figure | value | from |",
        "|---|---:|---|",
        f"| commands/s per idle worker (`c_idle`) | {idle:.2f} | the idle windows, the highest |",
        f"| Redis memory per idle worker | {mem / 1024:.1f} KB | {biggest['workers']:,} workers "
        "on one redis-server, `used_memory` less the empty server's: its connections' "
        "buffers, its presence and its document |",
        f"| connections per worker, one redis-server | {conns:.1f} | `connected_clients` / N "
        f"at {biggest['workers']:,} workers, each with its own client |",
    ]
    cluster_own = [r for r in rows if r["target"] == "cluster" and not r.get("shared_client")]
    if cluster_own:
        c = max(cluster_own, key=lambda r: r["workers"])
        out.append(
            f"| connections per worker, Redis Cluster of {c.get('masters', 3)} masters | "
            f"{c['idle']['clients'] / c['workers']:.1f} | summed over the masters at "
            f"{c['workers']:,} workers, each with its own cluster client (which also "
            "connects to the masters of the keys it touches beside its queue's) |"
        )
    out += [
        f"| commands per job (`c_job`) | {per_job:.0f} | (busy - idle commands/s) / jobs/s, "
        "the highest; each job held its worker 2.5 s, so this includes that worker's upkeep "
        "while busy (its heartbeats: `c_busy` below) |",
        f"| Redis CPU per command | {us:.1f} us | an upper bound: the busiest window, "
        f"{top['busy']['commands_per_s']:,.0f} commands/s at {top['busy']['cpu_percent']:.1f}% "
        "of a core, Redis's own background work included |",
    ]
    fleet = [r for r in rows if r["target"] == "cluster" and r["workers"] >= 10_000]
    for r in fleet:
        nodes = r["idle"].get("nodes", [])
        out.append(
            f"| {r['workers']:,} workers on {r['masters']} masters, per master "
            f"| {max(nd['clients'] for nd in nodes):,} connections, "
            f"{max(nd['commands_per_s'] for nd in nodes):,.0f} commands/s, "
            f"{max(nd['cpu_percent'] for nd in nodes):.1f}% CPU | the busiest master, idle "
            f"(busy, {r['rate']:g} jobs/s: enqueue -> start p99 {_ms(r['start_p99_ms'])}); "
            f"each {r.get('workers_per_client', 1)} of the harness's workers share one client, "
            "so a real fleet's connections are the per-worker figure above times N |"
        )
    for r in res["rows"]:  # a fleet that was not all live is named, not used
        if r["workers"] >= 10_000 and not _whole(r):
            out.append(
                f"| {r['workers']:,} workers ({r['target']}) | not used | only "
                f"{r['live_at_start']:,} live when measured, {r.get('live_at_end', 0):,} at "
                f"the end (load {r.get('load', '-')}): the harness's loops, not Redis, fell "
                "behind; bench/README.md, The swarm |"
            )
    # the worked example: one master kept under half a core
    budget = 0.5 / (us / 1e6)
    rate = 100
    idle_workers = (budget - rate * per_job) / idle
    out += [
        "",
        f"**Worked example** (these figures): half a core is about {budget:,.0f} commands a "
        f"second at {us:.1f} us a command; {rate} jobs a second cost about "
        f"{rate * per_job:,.0f} of them (their workers' upkeep while busy included), and the "
        f"remaining {budget - rate * per_job:,.0f} a second would serve about "
        f"{idle_workers:,.0f} idle workers. Connections come first: at {conns:.1f} a worker, "
        f"Redis's default `maxclients` of 10,000 holds about {10_000 / conns:,.0f} workers "
        "per master.",
    ]
    return "\n".join(out) + "\n"


def percommand(res: dict[str, Any], path: str) -> str:
    """Redis commands per job by command (busy less idle, over the job rate) at each N of a
    run whose windows recorded ``by_command``: where a job's commands go, and which grow."""
    rows = [r for r in res["rows"] if "by_command" in r["busy"]]
    cols = [f"{r['target']} {r['workers']:,}" for r in rows]

    def per_job(r: dict[str, Any], cmd: str) -> float:
        i, b = r["idle"]["by_command"], r["busy"]["by_command"]
        return float((b.get(cmd, 0.0) - i.get(cmd, 0.0)) / r["rate"])

    cmds = {c for r in rows for c in r["busy"]["by_command"]}
    top = sorted(cmds, key=lambda c: (-round(max(per_job(r, c) for r in rows), 1), c))[:14]
    out = [
        f"Results: `{path}`; {res['machine']}. Per job: (busy - idle) calls a second of each "
        "command over the jobs a second, commands run inside scripts included; the busiest "
        "14 commands, then all of them.",
        "",
        "| command | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for c in top:
        out.append(f"| {c} | " + " | ".join(f"{per_job(r, c):.1f}" for r in rows) + " |")
    totals = [sum(per_job(r, c) for c in sorted(cmds)) for r in rows]
    out.append("| all | " + " | ".join(f"{t:.1f}" for t in totals) + " |")
    return "\n".join(out)
