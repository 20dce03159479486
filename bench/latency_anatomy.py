"""Where enqueue -> start goes on an idle kubeq worker: the latency scenario, step by step.

    make bench-venvs      # kubeq's bench venv, as run.py runs kubeq (no test extras)
    PYTHONPATH=src ~/.cache/kubeq/bench-kubeq-*/bin/python bench/latency_anatomy.py \
        --results bench/results/latency-anatomy-DATE.json
    .venv/bin/python bench/report.py bench/README.md      # the bench:latencyanatomy block

Run it with kubeq's bench venv, as ``run.py`` runs kubeq's scenarios (the project venv
also holds the test extras, the OpenTelemetry SDK among them).

A private redis-server; a real ``kubeq worker kubeq_bench`` (default settings, as the
latency scenario runs it) whose wake path notes ``time.time()`` at each step into a list in
its own memory (no Redis command is added on the way), and this process as the producer,
as ``bench/systems/common.py``'s latency scenario does: ``n`` times, note the time, enqueue
``bench.lat`` through the bench's path (``app.enqueue_many([lat.s(i)])``), wait until the
task has recorded its own start, sleep 10-50 ms. The worker hands its notes over on
SIGUSR2. Per job, the steps between the producer's note and the task's start:

* ``enqueue call``: the producer's call, send to reply (it overlaps the worker's wake-up);
* ``to the fetch's reply``: from the enqueue call's start to the worker holding the reply
  of the fetch that leased the job: the hot wait's (its BLPOP and the fetch behind it,
  ``WakeFetch._blocked_fetch``), or, after a plain wait's wake-up, the fetch sent then
  (``Worker._exchange``, reply taken in); the results count the jobs the hot wait fetched;
* ``to placing``: the reply to ``_place_fresh``;
* ``to the lane``: placing to the thread lane's ``submit``;
* ``to the start``: the lane's ``submit`` to the task's first line (a thread woken).

``--src DIR`` runs another copy of kubeq (DIR holds its package).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
STEPS = [
    ("enqueue call", "sent", "returned"),
    ("to the fetch's reply", "sent", "answered"),
    ("to placing", "answered", "placed"),
    ("to the lane", "placed", "submitted"),
    ("to the start", "submitted", "started"),
    ("total", "sent", "started"),
]

PROBE = r"""
import json, signal, sys, time
import kubeq.worker.wakefetch as wakefetch, kubeq.worker.loop as loop
import kubeq.worker.state as state, kubeq.worker.threads as threads
notes, out = [], sys.argv.pop(1)
def note(name):
    notes.append((name, time.time()))
def before(cls, name, label, when=lambda self: True):
    orig = getattr(cls, name)
    def wrapped(self, *a, **k):
        if when(self):
            note(label)
        return orig(self, *a, **k)
    setattr(cls, name, wrapped)
def after(cls, name, label):
    orig = getattr(cls, name)
    async def wrapped(self, *a, **k):
        r = await orig(self, *a, **k)
        note(label)
        return r
    setattr(cls, name, wrapped)
after(wakefetch.WakeFetch, "_blocked_fetch", "answered")  # the hot wait's replies read
before(wakefetch.WakeFetch, "_take_hot", "hot")
after(loop.Worker, "_exchange", "answered")  # a fetch sent after a plain wait's wake-up
before(state.WorkerState, "_place_fresh", "placed", lambda self: bool(self._fresh))
before(threads.Lane, "submit", "submitted")
def dump(*_):
    with open(out, "w") as f:
        json.dump(notes, f)
signal.signal(signal.SIGUSR2, dump)
from kubeq.cli import main
sys.argv[0] = "kubeq"
sys.exit(main())
"""


def steps(
    notes: list[tuple[str, float]], sent: float, returned: float, started: float
) -> dict[str, float]:
    """The steps of one job: each step's first note after the one before, within the job."""
    at: dict[str, float] = {"sent": sent, "returned": returned, "started": started}
    after = sent
    for name in ("answered", "placed", "submitted"):
        got = next((t for n, t in notes if n == name and after <= t <= started), None)
        if got is None:
            return {}
        at[name] = after = got
    out = {label: (at[b] - at[a]) * 1e6 for label, a, b in STEPS}
    out["hot"] = float(any(n == "hot" and sent <= t <= started for n, t in notes))
    return out


def one(url: str, n: int, src: str | None, rep: int) -> dict[str, Any]:
    r = redis.Redis.from_url(url)
    r.flushall()
    env = dict(os.environ, BENCH_REDIS_URL=url, KUBEQ_REDIS_URL=url)
    paths = [str(HERE / "systems")] + ([src] if src else [str(HERE.parent / "src")])
    env["PYTHONPATH"] = os.pathsep.join(reversed(paths))
    out = Path(tempfile.mkdtemp(prefix="kubeq-latency-anatomy-")) / "notes.json"
    argv = [sys.executable, "-c", PROBE, str(out), "worker", "kubeq_bench", "--queue", "default"]
    worker = subprocess.Popen([*argv, "--log-level", "warning"], env=env, cwd=HERE / "systems")
    sys.path[:0] = [p for p in paths if p not in sys.path]
    os.environ.update(BENCH_REDIS_URL=url, KUBEQ_REDIS_URL=url)
    import kubeq_bench  # the bench's tasks, on this server

    kubeq_bench.app.redis_url = url
    rng = random.Random(rep)
    times: dict[int, tuple[float, float]] = {}
    try:
        for i in range(-1, n):  # -1: the warm-up (the worker's start)
            t0 = time.time()
            kubeq_bench.app.enqueue_many([kubeq_bench.lat.s(i)])
            times[i] = (t0, time.time())
            deadline = time.monotonic() + 60
            while int(r.llen("bench:lat")) < i + 2:  # type: ignore[arg-type]
                if time.monotonic() > deadline:
                    raise SystemExit(f"job {i} did not start in 60 s")
                time.sleep(0.0002)
            time.sleep(rng.uniform(0.010, 0.050))
        started = {int(a): float(b) for a, b in (x.split() for x in r.lrange("bench:lat", 0, -1))}
        worker.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the file written whole
        notes = [(str(a), float(b)) for a, b in json.loads(out.read_text())]
    finally:
        worker.terminate()
        worker.wait(30)
        kubeq_bench.app.close()
    jobs = [steps(notes, *times[i], started[i]) for i in range(n)]
    whole = [j for j in jobs if j]
    return {
        "rep": rep,
        "n": n,
        "traced": len(whole),
        "hot": int(sum(j["hot"] for j in whole)),
        "p50_us": {k: statistics.median(j[k] for j in whole) for k, _, _ in STEPS},
        "p99_us": {
            k: statistics.quantiles([j[k] for j in whole], n=100, method="inclusive")[98]
            for k, _, _ in STEPS
        },
    }


def render(res: dict[str, Any], path: str) -> str:
    m = res["machine"]
    runs = res["runs"]
    lines = [
        f"Results: `{path}`; {res['date']}, {m.get('cores')} cores, load "
        f"{m['load_avg_at_start'][0]:.1f} at the start, {m['load_avg_at_end'][0]:.1f} at the "
        f"end; {res['reps']} repetitions of {res['n']} jobs, the jobs whose every step was "
        f"noted ({sum(r['traced'] for r in runs):,} of {sum(r['n'] for r in runs):,}); the "
        "median over the repetitions of each step's p50 and p99.",
        "",
        "| step (idle worker, default settings) | p50 | p99 |",
        "|---|--:|--:|",
    ]
    labels = list(runs[0]["p50_us"])  # the steps the file was measured with
    for label in labels:
        p50 = statistics.median(r["p50_us"][label] for r in runs)
        p99 = statistics.median(r["p99_us"][label] for r in runs)
        name = f"**{label}**" if label == "total" else label
        lines.append(f"| {name} | {p50 / 1000:.2f} ms | {p99 / 1000:.2f} ms |")
    lines.append("")
    first = labels[1]  # the row after the enqueue call's
    lines.append(
        f"The steps overlap where the wake-up comes before the enqueue call returns; the rows "
        f"from `{first}` to `to the start` add up to the total, job by job."
    )
    if "hot" in runs[0]:
        hot, traced = sum(r["hot"] for r in runs), sum(r["traced"] for r in runs)
        lines.append(
            f"The hot wait's fetch (its BLPOP's write) leased {hot:,} of those {traced:,} jobs."
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--results", required=True, help="the JSON file to write")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--src", default=None, help="another copy of kubeq (DIR holds its package)")
    a = ap.parse_args()
    sys.path[:0] = [str(HERE), str(HERE.parent)]
    from figures import machine, private_redis, write_results

    info = machine()
    runs = []
    with private_redis("latency-anatomy") as url:
        for rep in range(a.reps):
            runs.append(one(url, a.n, a.src, rep))
            print(json.dumps(runs[-1]["p50_us"]), flush=True)
    write_results(a.results, info, runs, render, n=a.n, reps=a.reps, src=a.src or "src")


if __name__ == "__main__":
    main()
