"""What one idle `kubeq worker` process costs Redis, and how fast it still starts a new job.

    .venv/bin/python bench/idle_cost.py [--window 60] [--latency 200] [--label before|after]
        [--src OTHER_CHECKOUT/src] [--code WHAT]

Starts a private redis-server and one real `kubeq worker` (default settings, one queue), lets
it settle, then over ``--window`` seconds counts:

- commands run, as Redis counts them (``INFO commandstats`` deltas: the commands that Lua
  scripts run inside Redis count too), less the harness's own;
- commands sent, from ``MONITOR`` (a command run by a script is shown with ``lua`` as its
  client, and is not sent);
- round trips: ``INFO stats`` ``total_reads_processed`` deltas (Redis reads a request, or a
  whole pipeline, in one read event), less the harness's own;

and then the enqueue -> start latency on that idle worker with the bench's own latency
scenario (``bench/systems/cli.py kubeq latency``: p50 and p99 over ``--latency`` jobs).
The figures go under ``--label`` in bench/results/idle-cost-<date>.json, and the README's
``idlecost`` block (bench/fleet_report.py) is rendered from that file. ``--ab-reps N --src
OTHER/src`` runs only the latency scenario, N times for each code, alternating.
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
import threading
import time
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(HERE))

import report  # noqa: E402

from tests.support.redisserver import RedisServer  # noqa: E402

KUBEQ = str(Path(sys.executable).with_name("kubeq"))
OWN = {"config|resetstat", "info", "monitor", "config", "ping"}
"""The harness's own commands (its PING is the readiness check)."""


def command_calls(r: redis.Redis) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT."""
    stats: dict[str, Any] = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def monitor(url: str, stop: threading.Event, seen: list[tuple[float, str, str]]) -> None:
    """Collect (time, client, command) from MONITOR until ``stop`` is set; a command a script
    runs has the client ``lua``."""
    r = redis.Redis.from_url(url, socket_timeout=None)
    with r.monitor() as m:
        for item in m.listen():
            if stop.is_set():
                return
            client = "lua" if item.get("client_type") == "lua" else str(item["client_port"])
            seen.append((float(item["time"]), client, str(item["command"]).split(" ")[0]))


def commands_sent(seen: list[tuple[float, str, str]]) -> int:
    """Commands the worker sent: a script's own commands (client ``lua``) are not."""
    return sum(1 for _, client, cmd in seen if client != "lua" and cmd.lower() not in OWN)


def measure(window: float, latency_jobs: int, settle: float, src: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kubeq-idle-") as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        worker = None
        try:
            r = redis.Redis.from_url(server.url)
            env = {
                **os.environ,
                "KUBEQ_REDIS_URL": server.url,
                "BENCH_REDIS_URL": server.url,
                "PYTHONPATH": os.pathsep.join([*src, str(HERE / "systems")]),
            }
            log = open(Path(tmp) / "worker.log", "wb")  # noqa: SIM115 - closed below
            worker = subprocess.Popen(
                [KUBEQ, "worker", "kubeq_bench", "--queue", "default"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            time.sleep(settle)
            lines: list[tuple[float, str, str]] = []
            stop = threading.Event()
            watcher = threading.Thread(target=monitor, args=(server.url, stop, lines))
            r.config_resetstat()
            watcher.start()
            time.sleep(0.5)
            start = time.monotonic()
            reads = int(r.info("stats")["total_reads_processed"])
            time.sleep(window)
            # one read event per request or pipeline: the round trips (less this INFO)
            trips = int(r.info("stats")["total_reads_processed"]) - reads - 1
            calls = command_calls(r)
            took = time.monotonic() - start
            stop.set()
            r.ping()  # lets the MONITOR thread see one more line and return
            watcher.join(timeout=10)
            own = sum(n for c, n in calls.items() if c in OWN)
            run = sum(calls.values()) - own
            sent = commands_sent(lines)
            worker.terminate()
            worker.wait(30)
            log.close()
            cli = str(HERE / "systems" / "cli.py")
            out = subprocess.run(
                [sys.executable, cli, "kubeq", "latency", "--n", str(latency_jobs)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd=HERE / "systems",
            )
            lat = json.loads(out.stdout.strip().splitlines()[-1])
            return {
                "window_s": round(took, 1),
                "commands_per_s": round(run / took, 2),
                "sent_per_s": round(sent / took, 2),
                "round_trips_per_s": round(trips / took, 2),
                "by_command": {c: n for c, n in sorted(calls.items()) if c not in OWN},
                "latency_p50_ms": lat.get("p50_ms"),
                "latency_p99_ms": lat.get("p99_ms"),
            }
        finally:
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait()
            server.stop()


def latency_ab(before_src: str, reps: int, jobs: int) -> dict[str, Any]:
    """The latency scenario ``reps`` times for each code, alternating (so a noisy moment of a
    shared machine hits both): the median p50 and p99 of each."""
    figures: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="kubeq-idle-ab-") as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        try:
            for _ in range(reps):
                for label, src in (("before", [before_src]), ("after", [])):
                    path = os.pathsep.join([*src, str(HERE / "systems")])
                    env = {**os.environ, "BENCH_REDIS_URL": server.url, "PYTHONPATH": path}
                    cli = str(HERE / "systems" / "cli.py")
                    out = subprocess.run(
                        [sys.executable, cli, "kubeq", "latency", "--n", str(jobs)],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                        cwd=HERE / "systems",
                    )
                    figures[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
        finally:
            server.stop()
    out: dict[str, Any] = {"reps": reps, "jobs": jobs}
    for label, runs in figures.items():
        for q in ("p50_ms", "p99_ms"):
            out[f"{label}_{q}"] = statistics.median(r[q] for r in runs)
    out["machine"] = f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=float, default=60.0, help="seconds counted")
    ap.add_argument("--settle", type=float, default=8.0, help="seconds before counting")
    ap.add_argument("--latency", type=int, default=200, help="jobs for enqueue -> start")
    ap.add_argument(
        "--out",
        type=Path,
        default=HERE / "results" / f"idle-cost-{dt.date.today()}.json",
        help="the results file; the figures go under --label in it",
    )
    ap.add_argument("--label", choices=["before", "after"], default="after")
    ap.add_argument("--code", default="", help="which code ran, e.g. a commit (shown)")
    ap.add_argument("--readme", type=Path, default=HERE / "README.md")
    ap.add_argument(
        "--src", type=Path, help="run the kubeq of this src/ directory (another checkout)"
    )
    ap.add_argument("--ab-reps", type=int, help="only the latency A/B against --src, N times")
    a = ap.parse_args()
    if a.ab_reps:
        ab = latency_ab(str(a.src), a.ab_reps, a.latency)
        ab["before_code"] = a.code or str(a.src)
        print(json.dumps(ab, indent=1))
        old = json.loads(a.out.read_text()) if a.out.exists() else {}
        a.out.write_text(json.dumps(old | {"latency_ab": ab}, indent=1) + "\n")
        rel = str(a.out.resolve().relative_to(ROOT))
        for doc in (a.readme, ROOT / "docs" / "architecture.md"):
            doc.write_text(report.rewrite(doc.read_text(), rel, {"idlecost"}))
        return
    result = measure(a.window, a.latency, a.settle, [str(a.src)] if a.src else [])
    result["machine"] = f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    result["code"] = a.code or ("this checkout" if not a.src else str(a.src))
    print(json.dumps(result, indent=1))
    old = json.loads(a.out.read_text()) if a.out.exists() else {}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(old | {a.label: result}, indent=1) + "\n")
    rel = str(a.out.resolve().relative_to(ROOT))
    for doc in (a.readme, ROOT / "docs" / "architecture.md"):
        doc.write_text(report.rewrite(doc.read_text(), rel, {"idlecost"}))


if __name__ == "__main__":
    main()
