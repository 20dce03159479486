"""The floor under a worker's memory: what a fresh Python process holds once it has imported
a worker's modules and nothing else, in kubeq's venv and in arq's.

```console
$ .venv/bin/python bench/worker_floor.py --venvs ~/.cache/kubeq \
    --results bench/results/worker-floor-DATE.json
$ .venv/bin/python bench/report.py bench/README.md       # the bench:workerfloor block
```

Each case is a fresh interpreter of that venv (``python -c``) that imports a list of
modules, collects garbage and reads its own ``/proc/self/smaps_rollup``: PSS (the bench's
worker memory figure: shared pages split among the processes that map them) and
``Anonymous`` (the process's own heap and module objects, which no other process shares, so
it moves least with what else runs on the machine). Median of ``--reps`` processes. A module
named ``!name`` is hidden (``sys.modules[name] = None``: its import raises ImportError), as
``variants/no-otel-sdk`` hides the OpenTelemetry SDK from redis-py 8.

The worker's running state (its event loop, connections, threads) is not in these figures:
the bench's idle figure is this floor plus that.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

SDK_HIDDEN = "!opentelemetry.sdk"

ARQ_REDIS = "+arq-redis"
"""First in a case's list: kubeq's venv with arq's redis-py (its venv's ``redis`` and ``jwt``,
linked from a temporary directory put first on PYTHONPATH): kubeq on the redis-py arq runs on."""

CASES: list[tuple[str, str, list[str]]] = [
    ("kubeq", "Python alone", []),
    ("kubeq", "asyncio", ["asyncio"]),
    ("kubeq", "redis.asyncio + hiredis", ["redis.asyncio", "hiredis"]),
    ("kubeq", "redis.asyncio + hiredis, no OpenTelemetry SDK", [SDK_HIDDEN, "redis.asyncio"]),
    (
        "kubeq",
        "what `kubeq worker kubeq_bench` imports",
        ["kubeq.cli", "kubeq.cli.worker", "kubeq_bench"],
    ),
    (
        "kubeq",
        "the same, no OpenTelemetry SDK",
        [SDK_HIDDEN, "kubeq.cli", "kubeq.cli.worker", "kubeq_bench"],
    ),
    (
        "kubeq",
        "the same, no OpenTelemetry SDK, on arq's redis-py",
        [ARQ_REDIS, SDK_HIDDEN, "kubeq.cli", "kubeq.cli.worker", "kubeq_bench"],
    ),
    ("arq", "Python alone", []),
    ("arq", "asyncio", ["asyncio"]),
    ("arq", "redis.asyncio + hiredis", ["redis.asyncio", "hiredis"]),
    ("arq", "what `arq arq_bench.BestSettings` imports", ["arq.cli", "arq.worker", "arq_bench"]),
]

PROBE = r"""
import gc, importlib, json, sys
for name in sys.argv[1:]:
    if name.startswith("!"):
        sys.modules[name[1:]] = None
    else:
        importlib.import_module(name)
gc.collect()
loaded = len(sys.modules)
fields = {}
with open("/proc/self/smaps_rollup") as f:
    for line in f:
        parts = line.split()
        if parts[0] in ("Pss:", "Anonymous:", "Rss:"):
            fields[parts[0][:-1].lower()] = int(parts[1])
try:
    import redis
    version = redis.__version__
except ImportError:
    version = None
print(json.dumps({**fields, "modules": loaded, "redis": version}))
"""


def probe(python: str, modules: list[str], reps: int, first: str | None) -> dict[str, Any]:
    # kubeq's bench venv holds its dependencies only: its code is this checkout's src/
    path = [p for p in (first, str(HERE.parent / "src"), str(HERE / "systems")) if p]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(path),
        "BENCH_REDIS_URL": "redis://127.0.0.1:6379/0",  # the tasks modules build a client
        "KUBEQ_REDIS_URL": "redis://127.0.0.1:6379/0",  # (no connection is made)
    }
    runs = []
    for _ in range(reps):
        out = subprocess.run(
            [python, "-c", PROBE, *modules], capture_output=True, text=True, env=env, check=False
        )
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1:]}
        runs.append(json.loads(out.stdout))
    return {
        "pss_mb": round(statistics.median(r["pss"] for r in runs) / 1024, 1),
        "anon_mb": round(statistics.median(r["anonymous"] for r in runs) / 1024, 1),
        "rss_mb": round(statistics.median(r["rss"] for r in runs) / 1024, 1),
        "modules": runs[0]["modules"],
        "redis": runs[0]["redis"],
        "runs": runs,
    }


def render(res: dict[str, Any], path: str) -> str:
    """The ``bench:workerfloor`` block of bench/README.md."""
    m = res["machine"]
    lines = [
        f"Results: `{path}`; {res['date']}, {m.get('cores')} cores shared with other work, load "
        f"{m['load_avg_at_start'][0]:.1f} at the start, {m['load_avg_at_end'][0]:.1f} at the end; "
        f"median of {res['reps']} fresh processes per case.",
        "",
        "| venv | a fresh process that imported | redis-py | modules | PSS | Anonymous |",
        "|---|---|---|---:|---:|---:|",
    ]
    for c in res["cases"]:
        if "error" in c:
            lines.append(f"| {c['venv']} | {c['case']} | error: {c['error']} | | | |")
            continue
        lines.append(
            f"| {c['venv']} | {c['case']} | {c['redis'] or '-'} | {c['modules']} | "
            f"{c['pss_mb']:.1f} MB | {c['anon_mb']:.1f} MB |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--venvs", default=os.path.expanduser("~/.cache/kubeq"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--results", required=True, help="the JSON file to write")
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from bytecode import compile_all
    from figures import machine  # the rendering (report.py) needs neither
    from run import venv_python

    info = machine()
    venvs = Path(a.venvs).expanduser()
    arq_site = Path(venv_python(venvs, "arq")).parent.parent / "lib"
    linked = Path(tempfile.mkdtemp(prefix="kubeq-floor-"))
    for package in ("redis", "jwt"):  # redis-py 5.3 needs PyJWT
        (linked / package).symlink_to(next(arq_site.glob(f"python*/site-packages/{package}")))
    arq_redis = subprocess.run(
        [venv_python(venvs, "arq"), "-c", "import redis; print(redis.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for venv in sorted({venv for venv, _, _ in CASES}):
        compile_all(venv_python(venvs, venv))
    cases = []
    for venv, case, modules in CASES:
        python = venv_python(venvs, venv)
        first = str(linked) if modules[:1] == [ARQ_REDIS] else None
        found = probe(python, [m for m in modules if m != ARQ_REDIS], a.reps, first)
        if first and "error" not in found:  # its __version__ reads the venv's metadata
            found["redis"] = arq_redis
        cases.append({"venv": venv, "case": case, "imports": modules, **found})
        print(json.dumps({k: v for k, v in cases[-1].items() if k != "runs"}), flush=True)
    info["load_avg_at_end"] = os.getloadavg()
    res = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info,
        "reps": a.reps,
        "cases": cases,
    }
    Path(a.results).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
