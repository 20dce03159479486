"""Instructions per job, counted by callgrind: Redis's for a drain and a one-call enqueue,
and the worker's own for a drain.

    .venv/bin/python bench/redis_instructions.py --variant before=DIR \
        --results bench/results/redis-instructions-DATE.json
    .venv/bin/python bench/report.py bench/README.md      # the bench:redisinstructions block

On this shared 2-core machine a figure in time moves by tens of percent between repetitions;
the instructions a process executes for the same work barely do. valgrind's callgrind counts
them (tens of times slower: no figure in time from this run means anything), and only those
executed in user space: what the kernel does (sockets, epoll, futexes) is in no count. For
each repetition and each build (this checkout's ``src`` and each ``--variant LABEL=DIR``,
interleaved, each repetition starting with the next build):

* **drain**: a private redis-server runs under callgrind; ``--n`` no-op jobs of a sync task
  enqueued in bulk, the counters zeroed, then one ``kubeq worker --burst`` at its default
  settings (``--concurrency 4``), not under valgrind, drains them: the server's instructions
  per job, from the worker's first command to its last (its script loads included, spread
  over the jobs);
* **enqueue**: 50 calls of ``noop.delay()`` to warm up, the counters zeroed, then ``--calls``
  calls: the server's instructions per call;
* ``--task bench.noop_rated`` or ``bench.noop_slotted`` (with ``--no-worker``) counts the jobs
  of a task with a rate limit or a concurrency limit far above the drain rate instead (what
  a limit costs Redis per job: the limited paths of the scripts);
* **worker** (unless ``--no-worker``): the worker itself under callgrind, against another
  private redis-server (not counted), drains ``--n``/5 jobs, then a fresh one ``--n`` jobs:
  the difference of the two totals divided by the jobs between them is the worker's own
  instructions per job, its start-up taken out (bench/worker_instructions.py: how, its
  parts, and why its threads are scheduled fairly).

Redis's counts are taken apart with ``callgrind_annotate`` (inclusive costs): the scripts
(``EVALSHA``) and, inside them, the commands they call (``scriptCall``, and a few commands
by name), the replies made into Lua values (``parseReply``); what is left of the scripts is the
Lua VM running the scripts' own code and making their commands' arguments into Redis strings
(Debian's redis-server has no symbols for Lua's internals, so they are counted together).
What is outside the scripts is the server reading requests and writing replies. The
server's timer runs once a second (``--hz 1``, ten times by default): its work follows how
long the run takes under valgrind, not the jobs. Standard library and redis-py only in this
process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TASKS = "distance_tasks"
"""bench/distance_tasks.py: the no-op task."""
WARM = 50
NOOP = "bench.noop"
"""The task counted unless ``--task`` names another of distance_tasks.py."""

PARTS = {
    "evalGenericCommand": "in the scripts (`EVALSHA`)",
    "scriptCall": "in the commands the scripts call (`redis.call`)",
    "zaddGenericCommand": "in `ZADD`",
    "hmgetCommand": "in `HMGET`",
    "hsetCommand": "in `HSET`",
    "genericZpopCommand": "in `ZPOPMIN`",
    "hdelCommand": "in `HDEL`",
    "expireGenericCommand": "in `EXPIRE`",
    "parseReply": "making the commands' replies into Lua values",
    "luaCreateFunction": "compiling scripts (`SCRIPT LOAD`, once per script)",
}
"""The functions whose inclusive cost is kept, with what each stands for."""

ENQUEUE = r"""
import subprocess, sys
import distance_tasks as t
pid, calls, warm, task = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
delay = t.BY_NAME[task].delay
for _ in range(warm):
    delay()
subprocess.run(["callgrind_control", "--zero", pid], check=True, capture_output=True)
for _ in range(calls):
    delay()
subprocess.run(["callgrind_control", "--dump=enqueue", pid], check=True, capture_output=True)
"""


@contextlib.contextmanager
def counted_redis(out: Path) -> Iterator[tuple[redis.Redis, int, str]]:
    """A redis-server under callgrind, its dumps in ``out``; yields a client, valgrind's pid
    (callgrind_control's handle) and the URL."""
    sys.path.insert(0, str(ROOT / "src"))
    from kubeq.testing.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}/callgrind.%p",
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--hz",  # its timer's work follows the run's length under valgrind, not the jobs
            "1",
            "--dir",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis.from_url(url)
    deadline = time.monotonic() + 120
    while True:
        try:
            r.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server under callgrind did not start") from None
            time.sleep(0.3)
    try:
        yield r, proc.pid, url
    finally:
        with contextlib.suppress(redis.RedisError):
            r.shutdown(nosave=True)
        proc.wait(timeout=120)


def newest_dump(out: Path, pid: int, seen: set[Path]) -> Path:
    """The dump callgrind_control just asked for (callgrind.<pid>.<n>)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fresh = [p for p in out.glob(f"callgrind.{pid}.*") if p not in seen]
        if fresh:
            seen.update(fresh)
            return max(fresh, key=lambda p: int(p.name.rsplit(".", 1)[1]))
        time.sleep(0.2)
    raise RuntimeError("callgrind wrote no dump")


LINE = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+\S*?:(\w+)(?:'\d+)? \[")


def take_apart(dump: Path, per: int) -> dict[str, Any]:
    """The dump's total and the inclusive cost of each function of PARTS, per job (or call)."""
    text = dump.read_text(errors="replace")
    total = next(
        int(line.split()[1])
        for line in text.splitlines()
        if line.startswith(("summary:", "totals:"))
    )
    annotated = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(dump)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    parts: dict[str, int] = {}
    for line in annotated.splitlines():
        m = LINE.match(line)
        if m and m.group(2) in PARTS and m.group(2) not in parts:  # the outermost entry
            parts[m.group(2)] = int(m.group(1).replace(",", ""))
    return {
        "instructions": total / per,
        "parts": {name: parts.get(name, 0) / per for name in PARTS},
    }


def measure(
    r: redis.Redis,
    pid: int,
    url: str,
    out: Path,
    python: str,
    src: str,
    n: int,
    calls: int,
    task: str = NOOP,
) -> list[dict[str, Any]]:
    """One build's drain and one-call enqueue of ``task``'s jobs, counted."""
    env = {**os.environ, "KUBEQ_REDIS_URL": url, "PYTHONPATH": os.pathsep.join([src, str(HERE)])}
    seen = set(out.glob(f"callgrind.{pid}.*"))
    got = []
    r.flushall()
    fill = f"import {TASKS} as t; t.enqueue({task!r}, {n})"
    subprocess.run([python, "-c", fill], env=env, check=True)
    subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
    worker = "import sys; from kubeq.cli import main; sys.argv[0] = 'kubeq'; sys.exit(main())"
    argv = [python, "-c", worker, "worker", TASKS, "--queue", "default", "--burst"]
    subprocess.run([*argv, "--log-level", "warning"], env=env, check=True)
    subprocess.run(["callgrind_control", "--dump=drain", str(pid)], check=True, capture_output=True)
    if r.zcard("kubeq:{default}:ready"):
        raise RuntimeError("the worker left jobs ready: the drain was not whole")
    got.append({"kind": "drain", "n": n, **take_apart(newest_dump(out, pid, seen), n)})
    r.flushall()
    enqueue = [python, "-c", ENQUEUE, str(pid), str(calls), str(WARM), task]
    subprocess.run(enqueue, env=env, check=True)
    got.append({"kind": "enqueue", "n": calls, **take_apart(newest_dump(out, pid, seen), calls)})
    return got


def render(res: dict[str, Any], path: str) -> str:
    """The bench:redisinstructions block: medians of the repetitions, a column per build."""
    if str(HERE) not in sys.path:  # bench/report.py loads this file by its path
        sys.path.insert(0, str(HERE))
    import worker_instructions as worker

    runs = res["runs"]
    builds = list(dict.fromkeys(r["build"] for r in runs))

    def med(build: str, kind: str, part: str | None = None) -> float:
        rs = [r for r in runs if r["build"] == build and r["kind"] == kind]
        return statistics.median(r["parts"][part] if part else r["instructions"] for r in rs)

    def spread(build: str, kind: str) -> str:
        xs = [r["instructions"] for r in runs if r["build"] == build and r["kind"] == kind]
        return f"{min(xs) / 1000:,.1f}k to {max(xs) / 1000:,.1f}k"

    version = re.search(r"v=(\S+)", res["machine"].get("redis_server", "")) or None
    version = version.group(1) if version else "?"
    lines = [
        f"Results: `{path}`; {res['date']}, Redis {version}; "
        f"{res['reps']} repetition(s) per build, the builds interleaved; the median of the "
        f"repetitions, in thousands of instructions per job drained ({res['n']:,} jobs, one "
        f"worker at its default settings) and per one-call enqueue ({res['calls']:,} calls)"
        + (
            f"; the jobs of `{res['task']}` (distance_tasks.py)"
            if res.get("task", NOOP) != NOOP
            else ""
        )
        + (f"; kubeq from `{res['src']}`" if res.get("src") else "")
        + "".join(f"; `{k}` from `{v}`" for k, v in res.get("variants", {}).items())
        + (worker.first_line(res) if any(r["kind"] == "worker" for r in runs) else "")
        + ".",
        "",
        "| Redis's instructions | " + " | ".join(builds) + " |",
        "|---|" + "--:|" * len(builds),
    ]
    for kind, what in (("drain", "per job drained"), ("enqueue", "per one-call enqueue")):
        cells = " | ".join(f"**{med(b, kind) / 1000:,.1f}k**" for b in builds)
        lines.append(f"| {what}, all | {cells} |")
        for part, label in PARTS.items():
            if all(med(b, kind, part) < 0.005 * med(b, kind) for b in builds):
                continue  # under half a percent in every build: not shown
            cells = " | ".join(f"{med(b, kind, part) / 1000:,.1f}k" for b in builds)
            lines.append(f"| {what}, {label} | {cells} |")

        def rest(b: str, kind: str = kind) -> float:
            return (
                med(b, kind, "evalGenericCommand")
                - med(b, kind, "scriptCall")
                - med(b, kind, "parseReply")
            )

        lua = " | ".join(f"{rest(b) / 1000:,.1f}k" for b in builds)
        lines.append(
            f"| {what}, the rest of the scripts (the Lua VM: the scripts' own code, and their "
            f"commands' arguments made into Redis strings) | {lua} |"
        )
        lines.append(
            f"| {what}, repetitions from lowest to highest | "
            + " | ".join(spread(b, kind) for b in builds)
            + " |"
        )
    lines += worker.rows(runs, builds)
    if len(builds) > 1:
        first = builds[0]
        lines.append("")
        for b in builds[1:]:
            for kind, what in (("drain", "per job drained"), ("enqueue", "per one-call enqueue")):
                ratio = med(first, kind) / med(b, kind)
                lines.append(f"- `{first}` against `{b}`, {what}: {ratio:.3f}x the instructions.")
            lines += worker.ratio(runs, first, b)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--results", required=True, help="the JSON file to write")
    ap.add_argument("--venvs", default=os.path.expanduser("~/.cache/kubeq"))
    ap.add_argument("--n", type=int, default=5_000, help="jobs per drain")
    ap.add_argument("--calls", type=int, default=1_500, help="one-call enqueues counted")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--no-worker",
        action="store_true",
        help="do not count the worker's own instructions (two drains under valgrind per build "
        "and repetition, about a minute)",
    )
    ap.add_argument(
        "--task",
        default=NOOP,
        choices=["bench.noop", "bench.noop_rated", "bench.noop_slotted"],
        help="the task whose jobs are drained and enqueued (distance_tasks.py: a rate limit or "
        "a concurrency limit far above the drain rate; needs --no-worker)",
    )
    ap.add_argument("--src", help="the kubeq to run (this checkout's src by default)")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="another build of kubeq (DIR holds its package), counted in turn with --src's",
    )
    a = ap.parse_args()
    if a.task != NOOP and not a.no_worker:
        ap.error("--task counts Redis only: add --no-worker (the worker's count drains bench.noop)")
    src = a.src or str(ROOT / "src")
    sys.path[:0] = [str(HERE), str(ROOT)]
    import worker_instructions as worker
    from figures import machine, private_redis, turn, write_results
    from run import venv_python

    python = venv_python(Path(a.venvs), "kubeq")
    info = machine()
    variants = dict(v.split("=", 1) for v in a.variant)
    builds = [("kubeq", src), *variants.items()]
    drains = None if a.no_worker else [a.n // 5, a.n]
    runs = []
    with (
        tempfile.TemporaryDirectory(prefix="kubeq-callgrind-") as tmp,
        counted_redis(Path(tmp)) as (r, pid, url),
        contextlib.nullcontext(None) if a.no_worker else private_redis("wcount") as wurl,
    ):
        wr = redis.Redis.from_url(wurl) if wurl else None
        for rep in range(a.reps):
            for label, path in turn(builds, rep):
                counted = measure(r, pid, url, Path(tmp), python, path, a.n, a.calls, a.task)
                for one in counted:
                    runs.append({**one, "build": label, "rep": rep})
                    print(json.dumps(runs[-1]), flush=True)
                if wr is not None and wurl and drains:
                    one = worker.measure(wr, wurl, Path(tmp), python, path, HERE, *drains)
                    runs.append({**one, "build": label, "rep": rep})
                    print(json.dumps(runs[-1]), flush=True)
    write_results(
        a.results,
        info,
        runs,
        render,
        n=a.n,
        calls=a.calls,
        reps=a.reps,
        src=a.src,
        variants=variants,
        worker_drains=drains,
        task=a.task,
    )


if __name__ == "__main__":
    main()
