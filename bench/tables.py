"""The comparison tables of the READMEs (kubeq and its peers, Redis's own limits, the cost
of a deep backlog, the project's targets, the autoscaler, A/B runs), each made from a results
JSON of bench/run.py alone; bench/report.py puts them between their markers. Standard library
only."""

from __future__ import annotations

from typing import Any

# (key, label, unit, higher_is_better)
FIGURES = [
    ("enqueue_single", "enqueue, one call per job", "jobs/s", True),
    ("enqueue_bulk", "enqueue, bulk API", "jobs/s", True),
    ("enqueue_async", "enqueue, one awaited call per job (asyncio)", "jobs/s", True),
    ("drain_default", "drain, 1 worker process, default settings", "jobs/s", True),
    ("drain_best", "drain, 1 worker process, best settings for 2 cores", "jobs/s", True),
    ("drain_4procs", "drain, 4 worker processes on 2 cores (best settings each)", "jobs/s", True),
    ("latency_p50", "enqueue -> start on an idle worker, p50", "ms", False),
    ("latency_p99", "enqueue -> start on an idle worker, p99", "ms", False),
    ("enqueue_single_cpu", "client CPU per job, one call per job", "us", False),
    ("drain_default_cpu", "worker CPU per job, drain, default settings", "us", False),
    ("drain_best_cpu", "worker CPU per job, drain, best settings", "us", False),
    ("mem_waiting", "Redis memory per waiting job", "B", False),
    ("mem_finished", "Redis memory per finished job kept", "B", False),
    ("worker_idle_mb", "worker memory, idle (PSS of its processes)", "MB", False),
    ("worker_drain_mb", "worker memory, draining, peak (best settings)", "MB", False),
]


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit == "ms":
        return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"
    if unit == "s":
        return f"{v:.2f} s" if v < 10 else f"{v:.0f} s"
    if unit == "B":
        return "~0 B" if abs(v) < NEAR_ZERO_BYTES else f"{v:,.0f} B"
    if unit == "us":
        return f"{v:,.0f} µs"
    if unit == "MB":
        return f"{v:.0f} MB"
    return f"{v:,.0f}/s"


NEAR_ZERO_BYTES = 10
"""A memory delta per job smaller than this is noise around nothing kept (shown ~0 B)."""


def ratio(k: float | None, p: float | None, unit: str = "") -> str:
    if not k or not p or k <= 0 or p <= 0:
        return ""  # nothing to compare
    if unit == "B" and min(k, p) < NEAR_ZERO_BYTES:
        return ""  # against nothing kept: no ratio
    r = k / p
    return f"{r:.2f}" if r < 10 else f"{r:.0f}"


def best_peer(med: dict[str, dict[str, Any]], key: str, higher: bool) -> tuple[str, float] | None:
    """The best peer's name and median for one figure (kubeq and its variants excluded)."""
    vals = [
        (s, v)
        for s, fig in med.items()
        if not s.startswith("kubeq") and (v := fig.get(key)) is not None
    ]
    if not vals:
        return None
    return max(vals, key=lambda sv: sv[1]) if higher else min(vals, key=lambda sv: sv[1])


def summary(res: dict[str, Any], path: str) -> str:
    m = res.get("machine", {})
    cfg = res.get("config", {})
    load = m.get("load_avg_at_start") or []
    end = m.get("load_avg_at_end") or []
    loads = f"load average {', '.join(f'{x:.1f}' for x in load)} (1, 5, 15 min) at the start"
    if end:
        loads += f", {', '.join(f'{x:.1f}' for x in end)} at the end"
    minutes = round(res.get("wall_seconds", 0) / 60)
    return (
        f"Measured on {res.get('date', '?')[:10]} by `bench/run.py` (`{path}`), "
        f"{cfg.get('reps', '?')} interleaved repetitions, median shown; "
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory_gb', '?')} GB, "
        f"Linux {m.get('kernel', '?')}, Python {m.get('python', '?')}, "
        f"{str(m.get('redis_server', '?')).split(' sha')[0]}; {loads}; "
        f"the run took {minutes} minutes. {m.get('note', '')}."
    )


def comparison(res: dict[str, Any], path: str) -> str:
    med: dict[str, dict[str, Any]] = res["medians"]
    capped: dict[str, list[str]] = res.get("capped", {})
    peers = [s for s in med if not s.startswith("kubeq")]
    head = ["figure", "kubeq", *[f"{p} (kubeq/{p})" for p in peers]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, unit, higher in FIGURES:
        k = med.get("kubeq", {}).get(key)
        if k is None and all(med[p].get(key) is None for p in peers):
            continue  # a figure this run did not measure
        cells = [f"{label} ({'higher' if higher else 'lower'} is better)", fmt(k, unit)]
        for p in peers:
            v = med[p].get(key)
            mark = " *" if key in capped.get(p, []) else ""
            r = ratio(k, v, unit)
            cells.append(f"{fmt(v, unit)}{mark}" + (f" ({r})" if r else ""))
        lines.append("| " + " | ".join(cells) + " |")
    cap = res.get("config", {}).get("cap")
    notes = [
        "",
        "Ratio = kubeq/peer: for rates above 1 means kubeq is faster; for latencies and "
        "memory below 1 means kubeq needs less.",
    ]
    if capped:
        notes.append(
            f"`*` = the drain hit its {cap:.0f} s cap: rate = jobs done / time."
            if cap
            else "`*` = the drain hit its cap: rate = jobs done / time."
        )
    cfg = res.get("config", {})
    warm = next((r["warm_jobs"] for r in res.get("runs", []) if "warm_jobs" in r), None)
    if any(med[s].get("mem_waiting") is not None for s in med):
        counted = (
            (
                f"Redis memory: `INFO memory` used_memory (less the clients' buffers): what "
                f"{cfg.get('memory', 0):,} queued no-op jobs add; finished: what "
                f"{cfg.get('memory_finished', 0):,} jobs drained by one worker (best settings), "
                f"the worker stopped, leave; each after {warm:,} jobs queued (drained) first, "
                "which pay the fixed costs (scripts, a worker's keys) and bring a queue's "
                "counters to the widths of a queue past its first few thousand jobs "
            )
            if warm
            else (
                "Redis memory: `INFO memory` used_memory (less the clients' buffers) before and "
                f"after {cfg.get('memory', 0):,} queued no-op jobs; finished: after "
                f"{cfg.get('memory_finished', 0):,} jobs drained by one worker (best settings) "
                "and the worker stopped, what stays "
            )
        )
        notes.append(
            counted + "(kubeq keeps every finished job with its result "
            "for a day, RQ for 500 s, arq for a day; Celery and Dramatiq here keep none). "
            "Worker memory: PSS summed over the worker's processes (`/proc/PID/smaps_rollup`; "
            "RSS too in the JSON), idle = after one job, draining = the peak, sampled every 0.2 s."
        )
    kq = med.get("kubeq", {})
    if kq.get("drain_limited") and kq.get("drain_best"):
        notes.append(
            f"kubeq under a rate limit far above its drain rate (1000000/s): "
            f"{fmt(kq['drain_limited'], 'jobs/s')} = "
            f"{kq['drain_limited'] / kq['drain_best']:.0%} of the unlimited drain (best settings)."
        )
    return "\n".join(lines + notes)


def limits(res: dict[str, Any], path: str) -> str:
    lim = res.get("redis_limits") or {}
    raw = lim.get("raw", {})
    k = res["medians"].get("kubeq", {})
    rows = [
        ("enqueue, one call per job", "one LPUSH per job", "enqueue_single", "enqueue_single"),
        ("enqueue, bulk", "all LPUSHes in one pipeline", "enqueue_bulk", "enqueue_pipelined"),
        ("drain, best settings", "pop + store result, 1 round trip per job", "drain_best",
         "drain_per_job"),
        ("drain, best settings", "pop 32 + store 32 results, 1 round trip per 32", "drain_best",
         "drain_batched_32"),
    ]  # fmt: skip
    lines = [
        "| figure | raw redis-py loop (one process) | raw | kubeq | kubeq % of raw |",
        "|---|---|---|---|---|",
    ]
    for label, how, kkey, rkey in rows:
        kv, rv = k.get(kkey), raw.get(rkey)
        pct = f"{100 * kv / rv:.0f}%" if kv and rv else "n/a"
        lines.append(f"| {label} | {how} | {fmt(rv, '')} | {fmt(kv, '')} | {pct} |")
    rb = lim.get("redis_benchmark", {})
    if rb:
        cmds = list(rb.get("no_pipeline", {}))
        lines += [
            "",
            "| redis-benchmark (50 clients) | " + " | ".join(cmds) + " |",
            "|---|" + "---|" * len(cmds),
        ]
        for mode, label in (("no_pipeline", "no pipelining"), ("pipeline_32", "-P 32")):
            vals = [f"{rb[mode][c]:,.0f}/s" for c in cmds]
            lines.append(f"| {label} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def curve(res: dict[str, Any], path: str) -> str:
    cv: dict[str, list[dict[str, Any]]] = res.get("curve", {})
    if not cv:
        return "(this run measured no backlog curve)"
    systems = list(cv)
    head = ["jobs waiting"]
    for s in systems:
        head += [f"{s} drain", f"{s} enqueue p50 / p99"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    sizes = sorted({r["backlog"] for rs in cv.values() for r in rs})
    for n in sizes:
        cells = [f"{n:,}"]
        for s in systems:
            r = next((r for r in cv[s] if r["backlog"] == n), None)
            if r is None or "error" in r:
                cells += ["n/a", "n/a"]
            else:
                lat = f"{r['enqueue_p50_ms']:.2f} / {r['enqueue_p99_ms']:.2f} ms"
                cells += [fmt(r["rate"], "jobs/s"), lat]
        lines.append("| " + " | ".join(cells) + " |")
    for s in systems:
        ok = [r for r in cv[s] if "error" not in r and r.get("rate")]
        if len(ok) >= 2:
            lo, hi = ok[0], ok[-1]
            lines.append(
                f"\n{s}: drain at {hi['backlog']:,} waiting = "
                f"{hi['rate'] / lo['rate']:.0%} of the drain at {lo['backlog']:,}; "
                f"enqueue p99 x{hi['enqueue_p99_ms'] / lo['enqueue_p99_ms']:.2f}."
            )
    return "\n".join(lines)


def targets(res: dict[str, Any], path: str) -> str:
    """The performance targets: each one's measured value and whether this run reached it."""
    med = res["medians"]
    k = med.get("kubeq", {})
    raw = (res.get("redis_limits") or {}).get("raw", {})
    rows: list[tuple[str, str, float | None, float | None]] = []  # label, need, got, bar
    for key, label, factor in (
        ("drain_default", "drain, 1 process, default settings", 3.0),
        ("drain_best", "drain, 1 process, best settings", 3.0),
        ("enqueue_single", "enqueue, one call per job", 1.5),
    ):
        bp = best_peer(med, key, True)
        got = k.get(key) / bp[1] if bp and k.get(key) else None
        rows.append((label, f">= {factor:g}x the best peer ({bp[0] if bp else '?'})", got, factor))
    bp = best_peer(med, "latency_p50", False)
    p99 = k.get("latency_p99")
    rows.append(
        (
            "enqueue -> start p99",
            f"<= the best peer's p50 ({bp[0]}: {fmt(bp[1], 'ms')})" if bp else "n/a",
            p99,
            bp[1] if bp else None,
        )
    )
    bulk = k.get("enqueue_bulk")
    rawb = raw.get("enqueue_pipelined")
    rows.append(
        (
            "enqueue, bulk",
            ">= 50% of the raw pipelined redis-py loop",
            bulk / rawb if bulk and rawb else None,
            0.5,
        )
    )
    lines = ["| target | needs | this run | reached |", "|---|---|---|---|"]
    for label, need, got, bar in rows:
        if got is None or bar is None:
            lines.append(f"| {label} | {need} | n/a | not measured |")
            continue
        if label.startswith("enqueue -> start"):
            shown, ok = fmt(got, "ms"), got <= bar
        elif label == "enqueue, bulk":
            shown, ok = f"{got:.0%}", got >= bar
        else:
            shown, ok = f"{got:.2f}x", got >= bar
        lines.append(f"| {label} | {need} | {shown} | {'yes' if ok else '**no**'} |")
    return "\n".join(lines)


def autoscale(res: dict[str, Any], path: str) -> str:
    auto = res.get("autoscale") or {}
    src = auto.get("carried_from")
    keda = auto.get("keda_from_docs", {})
    k = auto.get("kubeq", {})
    if not k:
        return "(this run did not measure the autoscaler)"
    rows = [
        ("backlog appears -> replicas raised, from 0 (p50)", "from_zero_p50_s", "s"),
        ("backlog appears -> replicas raised, from 1 (p50)", "from_one_p50_s", "s"),
        ("queue drained -> 0 replicas (p50, stabilization at minimum)", "to_zero_p50_s", "s"),
        ("operator CPU per TaskQueue (100 TaskQueues, 1 s poll)", "cpu_percent_per_taskqueue", "%"),
    ]
    lines = [
        "| figure | kubeq (measured) | KEDA defaults (computed from documentation) | kubeq/KEDA |",
        "|---|---|---|---|",
    ]
    for label, key, unit in rows:
        kv, kd = k.get(key), keda.get(key)
        if unit == "%":
            ks = f"{kv:.3f}% of a core" if kv is not None else "n/a"
            ds = "not documented" if kd is None else f"{kd}"
        else:
            ks, ds = fmt(kv, "s"), fmt(kd, "s")
        r = f"{kv / kd:.3f}" if isinstance(kv, float) and isinstance(kd, int | float) and kd else ""
        lines.append(f"| {label} | {ks} | {ds} | {r} |")
    if src:
        lines.append(f"\nThe autoscaler was not re-measured in this run: figures of `{src}`.")
    return "\n".join(lines)


def ab(res: dict[str, Any], path: str) -> str:
    """kubeq against each variant of itself measured in the same run (interleaved)."""
    med = res["medians"]
    variants = res.get("variants", {})
    base = med.get("kubeq", {})
    lines = []
    for label, where in variants.items():
        other = med.get(f"kubeq:{label}", {})
        lines += [
            f"Variant `{label}` (`{where}`) against kubeq as committed, same run:",
            "",
            f"| figure | kubeq | {label} | {label}/kubeq | repetitions where {label} > kubeq |",
            "|---|---|---|---|---|",
        ]
        for key, flabel, unit, _higher in FIGURES:
            b, o = base.get(key), other.get(key)
            if b is None and o is None:
                continue
            r = f"{o / b:.2f}" if b and o else ""
            pairs = rep_pairs(res.get("runs", []), key, f"kubeq:{label}")
            above = f"{sum(v > k for k, v in pairs)} of {len(pairs)}" if pairs else ""
            lines.append(f"| {flabel} | {fmt(b, unit)} | {fmt(o, unit)} | {r} | {above} |")
        lines.append("")
    return "\n".join(lines).strip() or "(no variant in this run)"


_RUN_FIELD = {  # figure -> (scenario group, field of its runs)
    "enqueue_single": ("enqueue_single", "rate"),
    "enqueue_bulk": ("enqueue_bulk", "rate"),
    "enqueue_async": ("enqueue_async", "rate"),
    "drain_default": ("drain_default", "rate"),
    "drain_best": ("drain_best", "rate"),
    "latency_p50": ("latency", "p50_ms"),
    "latency_p99": ("latency", "p99_ms"),
    "enqueue_single_cpu": ("enqueue_single", "cpu_us_per_job"),
    "drain_default_cpu": ("drain_default", "cpu_us_per_job"),
    "drain_best_cpu": ("drain_best", "cpu_us_per_job"),
    "worker_idle_mb": ("latency", "worker_memory.pss_mb"),
    "worker_drain_mb": ("drain_best", "worker_memory.pss_mb"),
}


def rep_pairs(runs: list[dict[str, Any]], key: str, other: str) -> list[tuple[float, float]]:
    """(kubeq, other) of one figure in each repetition that measured both."""
    if key not in _RUN_FIELD:
        return []
    group, field = _RUN_FIELD[key]
    by_rep: dict[int, dict[str, float]] = {}
    for r in runs:
        value: Any = r
        for part in field.split("."):  # "worker_memory.pss_mb": a field of a field
            value = value.get(part) if isinstance(value, dict) else None
        if r.get("group") == group and value is not None:
            by_rep.setdefault(r["rep"], {})[r["system"]] = value
    return [(v["kubeq"], v[other]) for v in by_rep.values() if "kubeq" in v and other in v]
