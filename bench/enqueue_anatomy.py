"""Where a one-call enqueue goes: the client, Redis, and the round trip between them.

    .venv/bin/python bench/enqueue_anatomy.py --results bench/results/enqueue-anatomy-DATE.json
    .venv/bin/python bench/report.py bench/README.md      # the bench:enqueueanatomy block

A private redis-server; for each repetition and each build (this checkout's ``src``, and each
``--variant LABEL=DIR``, interleaved), one child process in kubeq's bench venv times, after a
warm-up of 300 calls of each:

* ``noop.delay()``, ``--n`` times: the bench's one-call enqueue (one script call, one round
  trip);
* redis-py's ``lpush`` of a payload of the same size, ``--n`` times: the raw one-LPUSH loop,
  the one-call enqueue target's denominator;
* ``App._plan`` of the same call, ``--n`` times, without sending: what the client does before
  the send (checks, the id, the payload, the script's arguments). Builds without it show none.
* the floor under a ``delay()``, each sent as ``delay()`` sends (``scripts._evalsha``) with
  the keys and arguments of one real ``delay()``: an empty script (``return {1}``): what one
  script call of protocol version 1 costs before any code runs; the shared definitions that
  ``enqueue.lua`` carries, then ``return {1}`` (Redis runs a script's whole text at every
  call); ``enqueue.lua`` itself, a new job id and send token per call, without the client's
  planning. Builds without ``scripts._evalsha`` show none.

For each: the wall time per call and the client's CPU per call (``time.process_time``). From
Redis, over the ``delay()`` calls alone: its CPU per call (``INFO cpu``) and, from ``INFO
commandstats``, the time per call in the script (``EVALSHA``, the commands it calls
included) and each command the script calls, with how many calls of it one enqueue makes.
What the script takes beyond its commands is the Lua it runs and what each ``redis.call``
costs Redis around the command (its arguments made into objects, the command looked up,
timed and counted).

Standard library and redis-py only in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WARM = 300

CHILD = r"""
import json, os, random, sys, time
import redis, kubeq
n, warm = int(sys.argv[1]), int(sys.argv[2])
url = os.environ["KUBEQ_REDIS_URL"]
app = kubeq.App(url)
@app.task(name="bench.noop")
def noop() -> None:
    pass
r = redis.Redis.from_url(url)
payload = b'{"task":"bench.noop"}'
def cpu():
    i = r.info("cpu")
    return float(i["used_cpu_sys"]) + float(i["used_cpu_user"])
def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6, (time.process_time() - c) / n * 1e6
for _ in range(warm):
    noop.delay()
    r.lpush("anatomy:list", payload)
out = {}
plan = getattr(app, "_plan", None)
if plan is not None:
    out["plan_us"] = timed(lambda: plan([noop.s()], None))[1]
out["lpush_wall_us"], out["lpush_cpu_us"] = timed(lambda: r.lpush("anatomy:list", payload))
try:  # the floor under it: one script call with a delay()'s own keys and arguments
    from kubeq.store import ids, scripts
    send_one = scripts._evalsha if hasattr(scripts, "part") else None
except (ImportError, AttributeError):
    send_one = None
if send_one is not None:
    seen = []
    def spy(client, sha, keys, args):
        seen.append((sha, list(keys), list(args)))
        return send_one(client, sha, keys, args)
    scripts._evalsha = spy
    noop.delay()
    scripts._evalsha = send_one
    sha, keys, args = seen[0]
    own = scripts.part("enqueue")
    shared = scripts.source("enqueue")[: -len(own)]
    bare = r.script_load("return {1}")
    defs = r.script_load(shared + "\nreturn {1}")
    out["bare_wall_us"], out["bare_cpu_us"] = timed(lambda: send_one(r, bare, keys, args))
    out["defs_wall_us"], out["defs_cpu_us"] = timed(lambda: send_one(r, defs, keys, args))
    def script_alone():
        a = list(args)
        a[2] = "%016x" % random.getrandbits(64)  # a new call: its own send token
        a[-2] = ids.new_job_id()  # and a new job
        send_one(r, sha, keys, a)
    out["script_wall_us"], out["script_cpu_us"] = timed(script_alone)
r.config_resetstat()
before = cpu()
out["delay_wall_us"], out["delay_cpu_us"] = timed(noop.delay)
out["redis_cpu_us"] = (cpu() - before) / n * 1e6
stats = r.info("commandstats")
out["commands"] = {
    k.removeprefix("cmdstat_"): [v["calls"] / n, v["usec"] / n]
    for k, v in stats.items()
    if k not in ("cmdstat_info", "cmdstat_config|resetstat") and v["calls"] >= n / 2
}
print(json.dumps(out))
"""


FLOOR = {
    "bare": "an empty script (`return {1}`) called with `delay()`'s 9 keys and 11 arguments, "
    "sent as `delay()` sends it",
    "defs": "the same with the shared definitions `enqueue.lua` carries before `return {1}`",
    "script": "`enqueue.lua` itself with `delay()`'s arguments (a new id and send token per "
    "call), without the client's planning",
}
"""The floor rows: what one script call costs before any of its code, then with what every
call of enqueue.lua runs first, then the script whole without the client around it."""


def one(python: str, url: str, n: int, src: str) -> dict[str, Any]:
    """One child's figures, with ``src`` first on its path."""
    env = {**os.environ, "KUBEQ_REDIS_URL": url, "PYTHONPATH": src}
    p = subprocess.run(
        [python, "-c", CHILD, str(n), str(WARM)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    for kind in ("delay", "lpush", "bare", "defs", "script"):
        if f"{kind}_wall_us" in out:
            out[f"{kind}_rate"] = 1e6 / out[f"{kind}_wall_us"]
    out["rate"] = out.pop("delay_rate")
    return out


def render(res: dict[str, Any], path: str) -> str:
    """The bench:enqueueanatomy block: medians of the repetitions, one column per build."""
    runs = res["runs"]
    builds = list(dict.fromkeys(r["build"] for r in runs))

    def med(build: str, key: str) -> float | None:
        vals = [r[key] for r in runs if r["build"] == build and key in r]
        return statistics.median(vals) if vals else None

    def cmd(build: str, name: str, i: int) -> float:
        return statistics.median(
            r["commands"].get(name, [0.0, 0.0])[i] for r in runs if r["build"] == build
        )

    m = res["machine"]
    lines = [
        f"Results: `{path}`; {res['date']}, {m.get('cores', '?')} cores, load "
        f"{m['load_avg_at_start'][0]:.1f} at the start, {m['load_avg_at_end'][0]:.1f} at the "
        f"end; {res['reps']} repetition(s) of {res['n']:,} calls of each kind per build, "
        "interleaved, the median of the repetitions.",
        "",
        "| one call | " + " | ".join(f"`{b}`" for b in builds) + " |",
        "|---|" + "--:|" * len(builds),
    ]
    rows = [
        ("`noop.delay()`, calls/s", "rate", "{:,.0f}"),
        ("redis-py `lpush` of the same payload, calls/s", "lpush_rate", "{:,.0f}"),
        ("`delay()` as a share of `lpush`", "rate", "%"),
        (f"{FLOOR['bare']}, as a share of `lpush`", "bare_rate", "%"),
        (f"{FLOOR['defs']}, as a share of `lpush`", "defs_rate", "%"),
        (f"{FLOOR['script']}, as a share of `lpush`", "script_rate", "%"),
        ("`delay()`, wall time per call", "delay_wall_us", "{:.0f} µs"),
        ("`lpush`, wall time per call", "lpush_wall_us", "{:.0f} µs"),
        ("`delay()`, the client's CPU per call", "delay_cpu_us", "{:.0f} µs"),
        ("`lpush`, the client's CPU per call", "lpush_cpu_us", "{:.0f} µs"),
        ("planning the call (`App._plan`, no send), CPU per call", "plan_us", "{:.1f} µs"),
        ("the empty script's call, the client's CPU per call", "bare_cpu_us", "{:.0f} µs"),
        ("`enqueue.lua` alone, the client's CPU per call", "script_cpu_us", "{:.0f} µs"),
        ("`delay()`, Redis CPU per call (`INFO cpu`)", "redis_cpu_us", "{:.0f} µs"),
    ]
    for label, key, fmt in rows:
        cells = []
        for b in builds:
            if fmt == "%":
                rate, raw = med(b, key), med(b, "lpush_rate")
                cells.append(f"{rate / raw:.0%}" if rate and raw else "n/a")
            else:
                v = med(b, key)
                cells.append(fmt.format(v) if v is not None else "n/a")
        if any(c != "n/a" for c in cells):  # a row no build measured is left out
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    names = sorted(
        {k for r in runs for k in r["commands"]},
        key=lambda k: -max(cmd(b, k, 1) for b in builds),
    )
    for name in names:
        if name == "evalsha":
            label = "Redis: in the script (`EVALSHA`), per call, its commands included"
            cells = [f"{cmd(b, name, 1):.1f} µs" for b in builds]
        else:
            label = f"Redis: `{name.upper()}` in the script: calls per enqueue, of µs each"
            cells = [
                f"{cmd(b, name, 0):.0f} of {cmd(b, name, 1) / max(cmd(b, name, 0), 1e-9):.2f} µs"
                if cmd(b, name, 0)
                else "-"
                for b in builds
            ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--results", required=True, help="the JSON file to write")
    ap.add_argument("--venvs", default=os.path.expanduser("~/.cache/kubeq"))
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="also time the kubeq in DIR (a copy of src/, or a build's package directory)",
    )
    a = ap.parse_args()
    builds = {"kubeq": str(ROOT / "src")}
    builds.update(dict(v.split("=", 1) for v in a.variant))
    sys.path[:0] = [str(HERE), str(ROOT)]
    import redis
    from figures import machine, private_redis, turn, write_results
    from run import venv_python

    python = venv_python(Path(a.venvs), "kubeq")
    info = machine()
    runs = []
    with private_redis("enqueue-anatomy") as url:
        r = redis.Redis.from_url(url)
        for rep in range(a.reps):
            for label, src in turn(list(builds.items()), rep):
                r.flushall()
                runs.append({**one(python, url, a.n, src), "build": label, "rep": rep})
                print(json.dumps(runs[-1]), flush=True)
    write_results(
        a.results,
        info,
        runs,
        render,
        n=a.n,
        reps=a.reps,
        builds=builds,
        redis_py=redis.__version__,
    )


if __name__ == "__main__":
    main()
