"""``make bench``: kubeq and its peers on one private Redis, Redis's own limits, the autoscaler.

    .venv/bin/python bench/run.py --venvs ~/.cache/kubeq [--quick] [--reps 3]
        [--only kubeq,rq,...] [--skip-autoscale] [--skip-limits]

Starts a redis-server on a free port, runs every scenario of every system as a subprocess
(kubeq with the project venv, each peer with its own venv, see bench.mk), REPS times,
interleaved so that a noisy moment hits every system (each repetition starts one system
later than the one before), and Redis's raw loops (redis_limits.py) at the start of each
repetition; reports the median of each figure,
the ratio kubeq/peer, Redis's limits (redis_limits.py), and the autoscaler figures
(autoscale.py, on the local control plane). Writes bench/results/<date>.json and .png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KUBEQ_SRC = str(ROOT / "src")
"""What kubeq's bench venv runs, unless a ``--variant`` or ``--kubeq-path`` says otherwise."""
sys.path.insert(0, str(ROOT))

import report  # noqa: E402
import tables  # noqa: E402
from bytecode import compile_all  # noqa: E402
from figures import machine, medians, turn  # noqa: E402
from redis_limits import raw_loops, raw_medians  # noqa: E402

from tests.support.redisserver import RedisServer  # noqa: E402

SYSTEMS = ["kubeq", "rq", "celery", "arq", "dramatiq"]
PEERS = SYSTEMS[1:]

FULL = {
    "reps": 3,
    "single": 5000,
    "bulk": 20000,
    "drain": 20000,
    "cap": 15.0,
    "latency": 200,
    "memory": 100000,
    "memory_finished": 5000,
    "curve": [1000, 10000, 100000, 1000000],
    "curve_window": 5.0,
}
QUICK = {
    "reps": 1,
    "single": 1000,
    "bulk": 5000,
    "drain": 5000,
    "cap": 8.0,
    "latency": 50,
    "memory": 10000,
    "memory_finished": 1000,
    "curve": [1000, 10000],
    "curve_window": 2.0,
}
CURVE_SYSTEMS = {"kubeq": 10**6, "dramatiq": 10**5}
"""The backlog curve: kubeq's priority ZSET against the best peer's list, each up to this
backlog (Dramatiq's bulk path queues about 6,000 jobs/s here: 10^6 would take minutes)."""


def venv_python(venvs: Path, system: str) -> str:
    """The interpreter of a system's bench venv (bench.mk). kubeq's holds its dependencies
    as uv.lock pins them, no extras, and runs this checkout's src/ (``KUBEQ_SRC``)."""
    if system == "kubeq":
        lock = (ROOT / "uv.lock").read_bytes() + (ROOT / "pyproject.toml").read_bytes()
        digest = hashlib.sha256(lock).hexdigest()[:12]
    else:
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
        (
            "drain_4procs",
            [
                "drain",
                "--settings",
                "best",
                "--procs",
                "4",
                "--n",
                str(cfg["drain"]),
                "--cap",
                str(cfg["cap"]),
            ],
        ),
        ("latency", ["latency", "--n", str(cfg["latency"])]),
        (
            "drain_limited",  # kubeq only: the cost of a rate limit on the hot path
            ["drain", "--settings", "limited", "--n", str(cfg["drain"]), "--cap", str(cfg["cap"])],
        ),
    ]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--venvs", default=os.path.expanduser("~/.cache/kubeq"))
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--only", default=",".join(SYSTEMS), help="comma-separated systems")
    ap.add_argument(
        "--groups",
        default=None,
        help="only these scenario groups (comma-separated: enqueue_single, drain_best, "
        "latency, memory, ...)",
    )
    ap.add_argument("--skip-autoscale", action="store_true")
    ap.add_argument("--skip-limits", action="store_true")
    ap.add_argument("--skip-memory", action="store_true", help="no Redis memory per job")
    ap.add_argument("--skip-curve", action="store_true", help="no backlog cost curve")
    ap.add_argument("--autoscale-trials", type=int, default=None)
    ap.add_argument(
        "--autoscale-from",
        default=None,
        help="carry the autoscaler figures over from this earlier results file (named in "
        "the output) instead of measuring them",
    )
    ap.add_argument("--out", default=None, help="results file stem (default: today's date)")
    ap.add_argument(
        "--kubeq-path",
        default=None,
        help="run kubeq from this directory (a copy of src/ with a proposed "
        "change) instead of this checkout's src/",
    )
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also run kubeq with PATH first on PYTHONPATH (a copy of src/ with a change, "
        "or a directory that blocks an optional module), interleaved with the others; its "
        "medians are 'kubeq:LABEL' (the 'ab' README block)",
    )
    ap.add_argument(
        "--update-readme",
        action="store_true",
        help="rewrite the bench blocks of README.md and bench/README.md from this run",
    )
    return ap.parse_args()


def main() -> int:
    a = parse_args()
    cfg = dict(QUICK if a.quick else FULL)
    if a.reps:
        cfg["reps"] = a.reps
    systems = [s for s in a.only.split(",") if s]
    groups = set(a.groups.split(",")) if a.groups else None
    # absolute: the workers run in bench/systems
    variants = {k: str(Path(v).resolve()) for k, v in (x.split("=", 1) for x in a.variant)}
    venvs = Path(a.venvs).expanduser()
    pythons = {s: venv_python(venvs, s) for s in systems}
    # (label in the results, system module, PYTHONPATH)
    runners = [(s, s, (a.kubeq_path or KUBEQ_SRC) if s == "kubeq" else None) for s in systems]
    runners += [(f"kubeq:{label}", "kubeq", path) for label, path in variants.items()]
    pythons.setdefault("kubeq", venv_python(venvs, "kubeq"))
    started = time.time()
    info = machine()
    compiled = {py: compile_all(py) for py in sorted(set(pythons.values()))}
    for path in {p for _, system, p in runners if system == "kubeq" and p}:
        compiled[path] = compile_all(pythons["kubeq"], [path])
    info["bytecode_compiled_seconds"] = compiled
    print(f"bench: bytecode compiled first (seconds): {compiled}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="kubeq-bench-"))
    server = RedisServer(work / "redis")
    server.start()
    print(f"bench: redis-server on {server.url}; {cfg}; runners {runners}", flush=True)
    runs: list[dict[str, Any]] = []
    limits: dict[str, Any] = {}
    curve: dict[str, list[dict[str, Any]]] = {}
    cli = str(HERE / "systems" / "cli.py")
    env = {**os.environ, "BENCH_REDIS_URL": server.url, "KUBEQ_REDIS_URL": server.url}

    def one(
        label: str, system: str, path: str | None, group: str, args: list[str], rep: int
    ) -> dict[str, Any]:
        t0 = time.monotonic()
        log = work / f"{label}-{group}-{rep}.log"
        run_env = env if not path else {**env, "BENCH_PYTHONPATH": path, "PYTHONPATH": path}
        argv = [pythons[system], cli, system, *args, "--redis-url", server.url, "--log", str(log)]
        out = run_json(argv, run_env, timeout=900)
        out.update(group=group, rep=rep, system=label)
        shown = {
            k: (round(v, 1) if isinstance(v, float) else v)
            for k, v in out.items()
            if k not in ("settings", "api", "used_memory")
        }
        print(
            f"  rep {rep + 1} {label:9s} {group:15s} "
            f"{time.monotonic() - t0:5.1f}s {json.dumps(shown)}",
            flush=True,
        )
        return out

    raw_runs: list[dict[str, float]] = []
    try:
        for rep in range(cfg["reps"]):
            if not a.skip_limits:  # the floor, measured in the same moments as the systems
                raw_runs.append(raw_loops(server.url, cfg["bulk"]))
                shown = {k: round(v) for k, v in raw_runs[-1].items()}
                print(f"  rep {rep + 1} raw loops {json.dumps(shown)}", flush=True)
            # each repetition starts one runner later (variants are added last)
            for label, system, path in turn(runners, rep):
                for group, args in scenario_runs(cfg, systems):
                    if group == "drain_limited" and system != "kubeq":
                        continue
                    if groups is None or group in groups:
                        runs.append(one(label, system, path, group, args, rep))
        # once each: memory per job (deterministic enough), then the backlog curve
        if not a.skip_memory and (groups is None or "memory" in groups):
            for label, system, path in runners:
                args = ["memory", "--n", str(cfg["memory"]), "--finished"]
                args += [str(cfg["memory_finished"]), "--cap", "60"]
                runs.append(one(label, system, path, "memory", args, 0))
        if not a.skip_curve and (groups is None or "curve" in groups):
            for n in cfg["curve"]:
                for label, system, path in runners:
                    if n > CURVE_SYSTEMS.get(system, 0):
                        continue
                    args = ["curve", "--n", str(n), "--window", str(cfg["curve_window"])]
                    out = one(label, system, path, "curve", args, 0)
                    out.setdefault("backlog", n)
                    curve.setdefault(label, []).append(out)
        if not a.skip_limits:
            print("bench: Redis's own limits (redis-benchmark)", flush=True)
            limits = run_json(
                [
                    sys.executable,
                    str(HERE / "redis_limits.py"),
                    "--redis-url",
                    server.url,
                    "--repeat",
                    "0",
                    "--requests",
                    "30000" if a.quick else "100000",
                ],
                env,
                600,
            )
            limits.update(raw_medians(raw_runs))
    finally:
        server.stop()
    info["load_avg_at_end"] = os.getloadavg()

    auto: dict[str, Any] = {}
    if a.autoscale_from:
        auto = json.loads(Path(a.autoscale_from).read_text()).get("autoscale", {})
        auto["carried_from"] = str(Path(a.autoscale_from).resolve().relative_to(ROOT))
    elif not a.skip_autoscale and not a.quick:
        print("bench: autoscaler on the local control plane (autoscale.py)", flush=True)
        argv = [sys.executable, str(HERE / "autoscale.py")]
        if a.autoscale_trials:
            argv += ["--trials", str(a.autoscale_trials)]
        auto = run_json(argv, dict(os.environ), timeout=1800)
    elif a.quick:
        auto = {"skipped": "--quick"}
    from autoscale import keda_from_docs

    auto.setdefault("keda_from_docs", keda_from_docs())

    labels = [r[0] for r in runners]
    med, notes, settings = medians(runs, labels)
    errors = [r for r in runs if "error" in r]
    if "error" in auto:
        errors.append({"system": "kubeq", "group": "autoscale", "rep": 0, "error": auto["error"]})
    day = a.out or dt.date.today().isoformat() + ("-quick" if a.quick else "")
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info,
        "config": {**cfg, "kubeq_path": a.kubeq_path},
        "variants": variants,
        "wall_seconds": round(time.time() - started),
        "medians": med,
        "settings": settings,
        "capped": {s: sorted(n) for s, n in notes.items() if n},
        "runs": runs,
        "curve": curve,
        "errors": errors,
        "redis_limits": limits,
        "autoscale": auto,
    }
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    json_path = results / f"{day}.json"
    # the tables name the results file from the repository root when it lives inside it
    rel = str(json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path)
    result["tables"] = {
        kind: report.RENDERERS[kind](result, rel)
        for kind in ("comparison", "limits", "curve", "targets", "autoscale", "ab")
    }
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
    print(tables.summary(result, rel))
    for kind, table in result["tables"].items():
        print(f"\n{kind}\n{table}")
    print()
    for s in labels:
        print(f"  {s}: " + "; ".join(f"{k}: {v}" for k, v in settings[s].items()))
    if errors:
        print("\nERRORS:")
        for e in errors:
            print(f"  {e['system']} {e['group']} rep {e['rep']}: {e['error']}")
    print(
        f"wrote {json_path}"
        + (
            f" and {png}"
            if chart and chart.returncode == 0
            else f" (no chart: {chart.stderr[-300:] if chart else 'no tools venv'})"
        )
    )
    if a.update_readme:
        kinds = {"summary", "comparison", "limits", "curve", "targets", "autoscale"}
        for readme in (ROOT / "README.md", HERE / "README.md"):
            readme.write_text(report.rewrite(readme.read_text(), rel, kinds))
            print(f"rewrote the bench blocks of {readme.relative_to(ROOT)} from {rel}")
    print(f"took {time.time() - started:.0f} s")
    return 1 if errors else 0


def venv_python_tools(venvs: Path) -> str | None:
    try:
        return venv_python(venvs, "tools")
    except SystemExit:
        return None


if __name__ == "__main__":
    sys.exit(main())
