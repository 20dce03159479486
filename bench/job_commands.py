"""What one job costs Redis, command by command: enqueue and drain, two codes side by side.

    .venv/bin/python bench/job_commands.py --before OTHER_CHECKOUT/src [--jobs 5000]
        [--reps 3] [--before-code WHAT] [--after-code WHAT] [--out FILE]

For each repetition, and each code in turn (before, after, before, after...), on a private
redis-server: ``--jobs`` jobs are enqueued one call each (the bench's no-op task),
then one real ``kubeq worker`` (default settings, one queue) drains them. Around each phase
Redis's own counters are read:

- commands run (``INFO commandstats`` calls: the commands Lua scripts run count too), by
  command, over the jobs;
- Redis CPU (``INFO cpu`` main thread, user + sys) over the jobs: the robust cost figure on a
  shared machine;
- the drain rate (jobs over the seconds from the worker's start to an empty queue, start-up
  included): noisy on a shared machine, so reported as the median of the repetitions.

The figures go to ``--out`` (bench/results/job-commands-<date>.json); the README's
``jobcommands`` blocks are rendered from the files their markers name by ``render`` below
(bench/report.py).
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
import time
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import report  # noqa: E402

from kubeq.store.keys import QueueKeys  # noqa: E402
from tests.support.redisserver import RedisServer  # noqa: E402

DEFAULT = QueueKeys.of("default")
KUBEQ = str(Path(sys.executable).with_name("kubeq"))
OWN = {"config|resetstat", "info", "ping", "zcard", "config"}
"""The harness's own commands (its ZCARDs poll the queue; the worker's are few)."""


def _counters(r: redis.Redis) -> tuple[dict[str, int], float]:
    stats: dict[str, Any] = r.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    cpu: dict[str, Any] = r.info("cpu")
    return calls, float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])


def _phase(r: redis.Redis, cpu0: float, jobs: int) -> dict[str, Any]:
    calls, cpu = _counters(r)
    mine = {c: n for c, n in sorted(calls.items()) if c not in OWN}
    return {
        "commands_per_job": round(sum(mine.values()) / jobs, 2),
        "redis_cpu_us_per_job": round((cpu - cpu0) / jobs * 1e6, 2),
        "by_command": {c: round(n / jobs, 3) for c, n in mine.items()},
    }


def one(src: str, jobs: int, worker_args: list[str]) -> dict[str, Any]:
    """Enqueue then drain ``jobs`` jobs with the kubeq of ``src``; each phase's counters."""
    with tempfile.TemporaryDirectory(prefix="kubeq-jobcmd-") as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        worker = None
        try:
            r = redis.Redis.from_url(server.url)
            env = {
                **os.environ,
                "KUBEQ_REDIS_URL": server.url,
                "BENCH_REDIS_URL": server.url,
                "PYTHONPATH": os.pathsep.join([src, str(HERE / "systems")]),
            }
            r.config_resetstat()
            _, cpu0 = _counters(r)
            # the bench's one-call enqueue (kubeq_bench.py), without its scenario's FLUSHALL
            enqueue_jobs = (
                f"import kubeq_bench as b\nfor _ in range({jobs}): b.noop.delay()\nb.app.close()"
            )
            subprocess.run(
                [sys.executable, "-c", enqueue_jobs],
                env=env,
                capture_output=True,
                check=True,
                cwd=HERE / "systems",
            )
            enqueue = _phase(r, cpu0, jobs)
            ready, active = DEFAULT.ready, DEFAULT.active
            r.config_resetstat()
            _, cpu0 = _counters(r)
            log = open(Path(tmp) / "worker.log", "wb")  # noqa: SIM115 - closed below
            start = time.monotonic()
            worker = subprocess.Popen(
                [
                    KUBEQ,
                    "worker",
                    "kubeq_bench",
                    "--queue",
                    "default",
                    "--log-level",
                    "warning",
                    *worker_args,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            deadline = start + 300
            while r.zcard(ready) + r.zcard(active) > 0:
                if time.monotonic() > deadline:
                    raise SystemExit(f"not drained in 300 s; see {tmp}/worker.log")
                time.sleep(0.01)
            took = time.monotonic() - start
            drain = _phase(r, cpu0, jobs)
            drain["rate"] = round(jobs / took, 1)
            worker.terminate()
            worker.wait(30)
            log.close()
            return {"enqueue": enqueue, "drain": drain}
        finally:
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait()
            server.stop()


def _median(runs: list[dict[str, Any]], phase: str, figure: str) -> float:
    return float(statistics.median(run[phase][figure] for run in runs))


def render(res: dict[str, Any], path: str) -> str:
    """The README block: per job, each code's commands (the busiest, then all), Redis CPU and
    drain rate, medians of the repetitions with their range."""
    codes = ["before", "after"]
    runs = {c: res[c] for c in codes}
    out = [
        f"Results: `{path}`; {res['jobs']:,} jobs, one worker "
        f"({res.get('worker_args') or 'default settings'}), {res['reps']} repetitions alternating "
        f"the codes; {res['machine']}. Before: {res['before_code']}; after: "
        f"{res['after_code']}. Per job, the median of the repetitions; commands run inside "
        "scripts included.",
        "",
        "| per job | before | after |",
        "|---|---:|---:|",
    ]

    def spread(c: str, phase: str, figure: str, fmt: str) -> str:
        vals = sorted(run[phase][figure] for run in runs[c])
        med = _median(runs[c], phase, figure)
        return f"{med:{fmt}} ({vals[0]:{fmt}}-{vals[-1]:{fmt}})"

    for phase in ("enqueue", "drain"):
        for figure, name, fmt in (
            ("commands_per_job", "commands run", ".1f"),
            ("redis_cpu_us_per_job", "Redis CPU, µs", ".1f"),
        ):
            cells = " | ".join(spread(c, phase, figure, fmt) for c in codes)
            out.append(f"| {phase}: {name} | {cells} |")
    rates = " | ".join(spread(c, "drain", "rate", ",.0f") for c in codes)
    out.append(f"| drain rate, jobs/s (one worker, start-up included) | {rates} |")
    cmds = {k for c in codes for run in runs[c] for p in run.values() for k in p["by_command"]}

    def per_job(c: str, cmd: str) -> float:
        return float(
            statistics.median(
                sum(run[p]["by_command"].get(cmd, 0.0) for p in ("enqueue", "drain"))
                for run in runs[c]
            )
        )

    top = sorted(cmds, key=lambda k: (-max(per_job(c, k) for c in codes), k))[:12]
    out += ["", "| command (enqueue + drain, per job) | before | after |", "|---|---:|---:|"]
    for k in top:
        out.append(f"| {k} | {per_job('before', k):.1f} | {per_job('after', k):.1f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="the src/ of the code before")
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--before-code", default="", help="which code ran before (shown)")
    ap.add_argument("--after-code", default="this checkout", help="which code ran after")
    ap.add_argument(
        "--out", type=Path, default=HERE / "results" / f"job-commands-{dt.date.today()}.json"
    )
    ap.add_argument(
        "--worker-args", default="", help="the worker's options, e.g. '-c 1 --prefetch-ms 0'"
    )
    ap.add_argument("--readme", type=Path, default=HERE / "README.md")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    res: dict[str, Any] = {"jobs": a.jobs, "reps": a.reps, "before": [], "after": []}
    for _ in range(a.reps):
        for label, src in (("before", str(a.before)), ("after", str(ROOT / "src"))):
            res[label].append(one(src, a.jobs, a.worker_args.split()))
            print(label, json.dumps({p: v["commands_per_job"] for p, v in res[label][-1].items()}))
    res["machine"] = (
        f"{os.cpu_count()} cores shared with other work, load {load0:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    res["before_code"] = a.before_code or str(a.before)
    res["after_code"] = a.after_code
    res["worker_args"] = a.worker_args
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    rel = str(a.out.resolve().relative_to(ROOT))
    # only the blocks that name this file (one block per worker configuration)
    a.readme.write_text(
        report.MARKER.sub(
            lambda m: report.rewrite(m[0], None, {"jobcommands"}) if m["path"] == rel else m[0],
            a.readme.read_text(),
        )
    )
    print(render(res, rel))


if __name__ == "__main__":
    main()
