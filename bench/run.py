"""``make bench``: kubeq and its peers on one private Redis, Redis's own limits, the autoscaler.

    .venv/bin/python bench/run.py --venvs ~/.cache/kubeq [--quick] [--reps 3]
        [--only kubeq,rq,...] [--skip-autoscale] [--skip-limits]

Starts a redis-server on a free port, runs every scenario of every system as a subprocess
(kubeq with the project venv, each peer with its own venv, see bench.mk), REPS times,
interleaved so that a noisy moment hits every system; reports the median of each figure,
the ratio kubeq/peer, Redis's limits (redis_limits.py), and the autoscaler figures
(autoscale.py, on the local control plane). Writes bench/results/<date>.json and .png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.redisserver import RedisServer  # noqa: E402

SYSTEMS = ["kubeq", "rq", "celery", "arq", "dramatiq"]
PEERS = SYSTEMS[1:]

FULL = {"reps": 3, "single": 5000, "bulk": 20000, "drain": 20000, "cap": 15.0, "latency": 200}
QUICK = {"reps": 1, "single": 1000, "bulk": 5000, "drain": 5000, "cap": 8.0, "latency": 50}

# (key, label, unit, higher_is_better)
FIGURES = [
    ("enqueue_single", "enqueue, one call per job", "jobs/s", True),
    ("enqueue_bulk", "enqueue, bulk API", "jobs/s", True),
    ("enqueue_async", "enqueue, one awaited call per job (asyncio)", "jobs/s", True),
    ("drain_default", "drain, 1 worker process, default settings", "jobs/s", True),
    ("drain_best", "drain, 1 worker process, best settings for 2 cores", "jobs/s", True),
    ("latency_p50", "enqueue -> start on an idle worker, p50", "ms", False),
    ("latency_p99", "enqueue -> start on an idle worker, p99", "ms", False),
]


def venv_python(venvs: Path, system: str) -> str:
    if system == "kubeq":
        return sys.executable  # the project venv
    req = HERE / "requirements" / f"{system}.txt"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()[:12]
    py = venvs / f"bench-{system}-{digest}" / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"no venv for {system} at {py.parent.parent}: run `make bench-venvs`")
    return str(py)


def run_json(argv: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    res = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        tail = "\n".join((res.stderr or res.stdout).splitlines()[-8:])
        return {"error": f"exit {res.returncode}: {tail}"}
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def machine() -> dict[str, Any]:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": redis_version,
        "load_avg_at_start": os.getloadavg(),
        "note": "2 cores shared with other engineers' test runs; no isolation",
    }


def scenario_runs(cfg: dict[str, Any], only: list[str]) -> list[tuple[str, list[str]]]:
    """(figure group, cli args) for one repetition of one system."""
    return [
        ("enqueue_single", ["enqueue", "--mode", "single", "--n", str(cfg["single"])]),
        ("enqueue_bulk", ["enqueue", "--mode", "bulk", "--n", str(cfg["bulk"])]),
        ("enqueue_async", ["enqueue", "--mode", "async", "--n", str(cfg["single"])]),
        (
            "drain_default",
            ["drain", "--settings", "default", "--n", str(cfg["drain"]), "--cap", str(cfg["cap"])],
        ),
        (
            "drain_best",
            ["drain", "--settings", "best", "--n", str(cfg["drain"]), "--cap", str(cfg["cap"])],
        ),
        ("latency", ["latency", "--n", str(cfg["latency"])]),
        (
            "drain_limited",  # kubeq only: the cost of a rate limit on the hot path
            ["drain", "--settings", "limited", "--n", str(cfg["drain"]), "--cap", str(cfg["cap"])],
        ),
    ]


def median_or_none(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return statistics.median(vs) if vs else None


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit == "ms":
        return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"
    if unit == "s":
        return f"{v:.2f} s" if v < 10 else f"{v:.0f} s"
    return f"{v:,.0f}/s"


def ratio(k: float | None, p: float | None) -> str:
    if not k or not p:
        return ""
    r = k / p
    return f"{r:.2f}" if r < 10 else f"{r:.0f}"


def comparison_table(
    med: dict[str, dict[str, float | None]], systems: list[str], notes: dict[str, dict[str, str]]
) -> str:
    peers = [s for s in systems if s != "kubeq"]
    head = ["figure", "kubeq", *[f"{p} (kubeq/{p})" for p in peers]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, unit, higher in FIGURES:
        k = med["kubeq"].get(key) if "kubeq" in med else None
        cells = [f"{label} ({'higher' if higher else 'lower'} is better)", fmt(k, unit)]
        for p in peers:
            v = med.get(p, {}).get(key)
            mark = notes.get(p, {}).get(key, "")
            r = ratio(k, v)
            cells.append(f"{fmt(v, unit)}{mark}" + (f" ({r})" if r else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def limits_table(limits: dict[str, Any], med: dict[str, dict[str, float | None]]) -> str:
    raw = limits.get("raw", {})
    k = med.get("kubeq", {})
    rows = [
        (
            "enqueue, one call per job",
            "one LPUSH per job",
            k.get("enqueue_single"),
            raw.get("enqueue_single"),
        ),
        (
            "enqueue, bulk",
            "all LPUSHes in one pipeline",
            k.get("enqueue_bulk"),
            raw.get("enqueue_pipelined"),
        ),
        (
            "drain, best settings",
            "pop + store result, 1 round trip per job",
            k.get("drain_best"),
            raw.get("drain_per_job"),
        ),
        (
            "drain, best settings",
            "pop 32 + store 32 results, 1 round trip per 32",
            k.get("drain_best"),
            raw.get("drain_batched_32"),
        ),
    ]
    lines = [
        "| figure | raw redis-py loop (one process) | raw | kubeq | kubeq % of raw |",
        "|---|---|---|---|---|",
    ]
    for label, how, kv, rv in rows:
        pct = f"{100 * kv / rv:.0f}%" if kv and rv else "n/a"
        lines.append(f"| {label} | {how} | {fmt(rv, '')} | {fmt(kv, '')} | {pct} |")
    rb = limits.get("redis_benchmark", {})
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


def autoscale_table(auto: dict[str, Any]) -> str:
    keda = auto.get("keda_from_docs", {})
    k = auto.get("kubeq", {})
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
        r = (
            f"{kv / kd:.3f}"
            if isinstance(kv, float) and isinstance(kd, (int, float)) and kd
            else ""
        )
        lines.append(f"| {label} | {ks} | {ds} | {r} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--venvs", default=os.path.expanduser("~/.cache/kubeq"))
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--only", default=",".join(SYSTEMS), help="comma-separated systems")
    ap.add_argument("--skip-autoscale", action="store_true")
    ap.add_argument("--skip-limits", action="store_true")
    ap.add_argument("--autoscale-trials", type=int, default=None)
    ap.add_argument("--out", default=None, help="results file stem (default: today's date)")
    ap.add_argument(
        "--kubeq-path",
        default=None,
        help="run kubeq from this directory (a copy of worker/ with a proposed "
        "change) instead of the installed library",
    )
    a = ap.parse_args()
    cfg = dict(QUICK if a.quick else FULL)
    if a.reps:
        cfg["reps"] = a.reps
    systems = [s for s in a.only.split(",") if s]
    venvs = Path(a.venvs).expanduser()
    pythons = {s: venv_python(venvs, s) for s in systems}
    started = time.time()
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="kubeq-bench-"))
    server = RedisServer(work / "redis")
    server.start()
    print(f"bench: redis-server on {server.url}; {cfg}; systems {systems}", flush=True)
    runs: list[dict[str, Any]] = []
    limits: dict[str, Any] = {}
    try:
        env = {**os.environ, "BENCH_REDIS_URL": server.url, "KUBEQ_REDIS_URL": server.url}
        cli = str(HERE / "systems" / "cli.py")
        for rep in range(cfg["reps"]):
            for system in systems:
                for group, args in scenario_runs(cfg, systems):
                    if group == "drain_limited" and system != "kubeq":
                        continue
                    t0 = time.monotonic()
                    log = work / f"{system}-{group}-{rep}.log"
                    run_env = env
                    if system == "kubeq" and a.kubeq_path:
                        run_env = {
                            **env,
                            "BENCH_PYTHONPATH": a.kubeq_path,
                            "PYTHONPATH": a.kubeq_path,
                        }
                    out = run_json(
                        [
                            pythons[system],
                            cli,
                            system,
                            *args,
                            "--redis-url",
                            server.url,
                            "--log",
                            str(log),
                        ],
                        run_env,
                        timeout=300,
                    )
                    out.update(group=group, rep=rep, system=system)
                    runs.append(out)
                    shown = {
                        k: (round(v, 1) if isinstance(v, float) else v)
                        for k, v in out.items()
                        if k not in ("settings", "api")
                    }
                    print(
                        f"  rep {rep + 1} {system:9s} {group:15s} "
                        f"{time.monotonic() - t0:5.1f}s {json.dumps(shown)}",
                        flush=True,
                    )
        if not a.skip_limits:
            print("bench: Redis's own limits (redis-benchmark, raw redis-py loops)", flush=True)
            limits = run_json(
                [
                    sys.executable,
                    str(HERE / "redis_limits.py"),
                    "--redis-url",
                    server.url,
                    "--n",
                    str(cfg["bulk"]),
                    "--requests",
                    "30000" if a.quick else "100000",
                ],
                env,
                600,
            )
    finally:
        server.stop()

    auto: dict[str, Any] = {}
    if not a.skip_autoscale and not a.quick:
        print("bench: autoscaler on the local control plane (autoscale.py)", flush=True)
        argv = [sys.executable, str(HERE / "autoscale.py")]
        if a.autoscale_trials:
            argv += ["--trials", str(a.autoscale_trials)]
        auto = run_json(argv, dict(os.environ), timeout=1800)
    elif a.quick:
        auto = {"skipped": "--quick"}
    from autoscale import keda_from_docs

    auto.setdefault("keda_from_docs", keda_from_docs())

    # medians per system and figure
    med: dict[str, dict[str, float | None]] = {s: {} for s in systems}
    notes: dict[str, dict[str, str]] = {s: {} for s in systems}
    settings: dict[str, dict[str, str]] = {s: {} for s in systems}
    errors = [r for r in runs if "error" in r]
    if "error" in auto:
        errors.append({"system": "kubeq", "group": "autoscale", "rep": 0, "error": auto["error"]})
    for s in systems:
        mine = [r for r in runs if r["system"] == s and "error" not in r]
        for key in (
            "enqueue_single",
            "enqueue_bulk",
            "enqueue_async",
            "drain_default",
            "drain_best",
            "drain_limited",
        ):
            rs = [r for r in mine if r["group"] == key]
            med[s][key] = median_or_none([r.get("rate") for r in rs])
            if any(r.get("capped") for r in rs):
                notes[s][key] = " *"
            for r in rs:
                if r.get("settings"):
                    settings[s][key] = r["settings"]
                if r.get("api"):
                    settings[s][key] = r["api"]
        lat = [r for r in mine if r["group"] == "latency"]
        med[s]["latency_p50"] = median_or_none([r.get("p50_ms") for r in lat])
        med[s]["latency_p99"] = median_or_none([r.get("p99_ms") for r in lat])
        if lat:
            settings[s]["latency"] = lat[0].get("settings", "")

    table = comparison_table(med, systems, notes)
    kq = med.get("kubeq", {})
    if kq.get("drain_limited") and kq.get("drain_best"):
        tax = kq["drain_limited"] / kq["drain_best"]  # type: ignore[operator]
        table += (
            f"\n\nkubeq drain under a rate limit far above it (1000000/s): "
            f"{kq['drain_limited']:.0f} jobs/s = {tax:.0%} of the unlimited drain (best settings)"
        )
    ltable = limits_table(limits, med) if limits and "error" not in limits else ""
    atable = autoscale_table(auto)
    day = a.out or dt.date.today().isoformat() + ("-quick" if a.quick else "")
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info,
        "config": {**cfg, "kubeq_path": a.kubeq_path},
        "wall_seconds": round(time.time() - started),
        "medians": med,
        "settings": settings,
        "capped": {s: sorted(n) for s, n in notes.items() if n},
        "runs": runs,
        "errors": errors,
        "redis_limits": limits,
        "autoscale": auto,
        "tables": {"comparison": table, "redis_limits": ltable, "autoscale": atable},
    }
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    json_path = results / f"{day}.json"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    png = results / f"{day}.png"
    tools = venv_python_tools(venvs)
    chart = (
        subprocess.run(
            [tools, str(HERE / "chart.py"), str(json_path), str(png)],
            capture_output=True,
            text=True,
            check=False,
        )
        if tools
        else None
    )

    print()
    print(
        f"kubeq vs peers: median of {cfg['reps']} runs; ratio = kubeq/peer "
        f"(rates: >1 means kubeq is faster; latency: <1 means kubeq is faster)"
    )
    print(table)
    print(
        "  * the run hit the drain cap "
        f"({cfg['cap']:.0f} s): rate = jobs done / time, not all {cfg['drain']} drained"
    )
    print()
    for s in systems:
        print(f"  {s}: " + "; ".join(f"{k}: {v}" for k, v in settings[s].items()))
    if ltable:
        print("\nRedis's own limit in the same run\n" + ltable)
    print("\nAutoscaler\n" + atable)
    if errors:
        print("\nERRORS:")
        for e in errors:
            print(f"  {e['system']} {e['group']} rep {e['rep']}: {e['error']}")
    print(
        f"\nmachine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB, "
        f"{info['redis_server'].split(' sha')[0]}, Python {info['python']}; {info['note']}"
    )
    print(
        f"wrote {json_path}"
        + (
            f" and {png}"
            if chart and chart.returncode == 0
            else f" (no chart: {chart.stderr[-300:] if chart else 'no tools venv'})"
        )
    )
    print(f"took {time.time() - started:.0f} s")
    return 1 if errors else 0


def venv_python_tools(venvs: Path) -> str | None:
    try:
        return venv_python(venvs, "tools")
    except SystemExit:
        return None


if __name__ == "__main__":
    sys.exit(main())
