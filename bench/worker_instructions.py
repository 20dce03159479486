"""The worker's own instructions per job drained, counted by callgrind: the part of
bench/redis_instructions.py that counts the worker process rather than Redis (its docstring
says how the two fit together).

One count is two drains of the no-op task by ``kubeq worker --burst`` at its default settings,
each in a fresh process under ``valgrind --tool=callgrind --fair-sched=yes``, of ``n1`` and
then ``n2`` jobs; the count per job is the difference of their totals divided by ``n2 - n1``,
which takes out the start-up (the imports, the scripts' SHA1s: about 1.5 G instructions).
valgrind counts instructions executed in user space only: what the kernel does for the worker
(the sockets, epoll, the futexes of its threads) is in no figure here.

The threads that run the jobs are scheduled by valgrind, one at a time: under its default
scheduling (whichever thread the system wakes first runs) the count moved by 7 % from one
pair of drains to the next; with ``--fair-sched=yes`` (the threads take turns), by 1 % within
a run and 2.5 % across the runs tried. Each count also records the scripts (``EVALSHA``) the
worker ran per job, from the private redis-server's ``INFO commandstats``: how its jobs were
batched, which follows the worker's timing (its prefetch adapts to it); it moved between 15
and 20 per 1,000 jobs from one count to the next while the count moved by 1 %.

Before a build's drains every script of the build is loaded into the server, so that no
worker counted loads one (a load made its drain some 20 M instructions dearer: the worker
makes the script's text from its parts, and which scripts a drain calls beyond the fetch and
the ack follows its timing), and the server is emptied before each drain. A worker that does
not stop is killed and its drain done again, once (stderr says so; the drain's ``hung``
counts it).

Parts, from ``callgrind_annotate`` of both dumps, differenced and divided like the total
(they overlap: hiredis's allocations are also glibc's malloc):

* inclusive costs (the outermost call of each function, with all it calls): the garbage
  collector (``gc_collect_main``), hiredis packing commands (``py_pack_command``, and in it
  formatting them in RESP, ``redisFormatCommandArgv``), hiredis parsing replies into Python
  objects (``redisReaderGetReply``, with the reader's callbacks making the objects);
* exclusive costs (the instructions of the functions themselves): the eval loop
  (``_PyEval_EvalFrameDefault``: executing the bytecode; its inclusive cost is the whole
  run, the event loop and the task threads being Python code), Python's small-object
  allocator (every function of ``Objects/obmalloc.c``) and glibc's malloc (every function of
  its ``malloc/`` sources).

Standard library only: bench/report.py renders the block through this module.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

TASKS = "distance_tasks"
READY = "kubeq:{default}:ready"

PARTS = {
    "_PyEval_EvalFrameDefault": "in the eval loop itself (`_PyEval_EvalFrameDefault`, "
    "exclusive: executing the bytecode)",
    "gc_collect_main": "in the garbage collector (`gc_collect_main`)",
    "py_pack_command": "in hiredis packing commands (`pack_command`)",
    "redisFormatCommandArgv": "of which formatting them in RESP (`redisFormatCommandArgv`)",
    "redisReaderGetReply": "in hiredis parsing replies into Python objects (`redisReaderGetReply`)",
    "obmalloc": "in Python's small-object allocator (`obmalloc.c`, exclusive)",
    "malloc": "in glibc's malloc, realloc and free (exclusive)",
}
"""The parts kept, with what each stands for (the names as a dump of Python 3.11 and
hiredis 3.5 shows them)."""

INCLUSIVE = ("gc_collect_main", "py_pack_command", "redisFormatCommandArgv", "redisReaderGetReply")
SELF_FUNCTIONS = ("_PyEval_EvalFrameDefault",)
SELF_FILES = {
    "obmalloc": re.compile(r"(?:^|/)Objects/obmalloc\.c$"),
    "malloc": re.compile(r"(?:^|/)malloc/\w+\.c$"),  # glibc's ./malloc/./malloc/malloc.c
}

ENTRY = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+(.*?):(.+?)(?:'(\d+))?(?: \[[^\]]*\])?$")
"""One line of callgrind_annotate: cost, file, function, recursion level (``'2``: a call
inside a call of itself), object. A function whose code comes from several files (inlined
headers) has a line per file."""

WORKER = "import sys; from kubeq.cli import main; sys.argv[0] = 'kubeq'; sys.exit(main())"
ARGV = ["-c", WORKER, "worker", TASKS, "--queue", "default", "--burst", "--log-level", "warning"]
FILL = "import " + TASKS + " as t; t.enqueue('bench.noop', {n})"
PRELOAD = (
    "import os, redis; from kubeq.store.scripts import LUA; "
    "r = redis.Redis.from_url(os.environ['KUBEQ_REDIS_URL']); "
    "[r.script_load(s.script) for s in LUA.values()]"
)


def limit(n: int) -> float:
    """Seconds after which a worker under callgrind draining ``n`` jobs is taken for hung
    (5,000 jobs take some 30 s here)."""
    return 120 + n / 50


def annotate(dump: Path, inclusive: bool) -> list[tuple[int, str, str, bool]]:
    """callgrind_annotate's lines: (cost, file, function, nested in a call of itself)."""
    out = subprocess.run(
        [
            "callgrind_annotate",
            f"--inclusive={'yes' if inclusive else 'no'}",
            "--threshold=100",
            str(dump),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = []
    for line in out.splitlines():
        m = ENTRY.match(line)
        if m:
            lines.append(
                (int(m.group(1).replace(",", "")), m.group(2), m.group(3), bool(m.group(4)))
            )
    return lines


def take_apart(dump: Path) -> dict[str, Any]:
    """A dump's total and its PARTS, in instructions."""
    total = next(
        int(line.split()[1])
        for line in dump.read_text(errors="replace").splitlines()
        if line.startswith(("summary:", "totals:"))
    )
    parts = dict.fromkeys(PARTS, 0)
    for cost, _, fn, nested in annotate(dump, inclusive=True):
        if fn in INCLUSIVE and not nested:  # the outermost calls, every file of the function
            parts[fn] += cost
    for cost, file, fn, _ in annotate(dump, inclusive=False):
        if fn in SELF_FUNCTIONS:  # every file and every level of recursion
            parts[fn] += cost
        for key, pattern in SELF_FILES.items():
            if pattern.search(file):
                parts[key] += cost
    return {"instructions": total, "parts": parts}


def drain(r: Any, python: str, env: dict[str, str], out: Path, n: int) -> dict[str, Any]:
    """``n`` jobs enqueued, then drained by one worker under callgrind: its count, and the
    scripts it ran and loaded. A worker still running after ``limit(n)`` seconds is killed
    and the drain done again, once; ``hung`` says how many were."""
    for hung in range(2):
        r.flushall()
        subprocess.run([python, "-c", FILL.format(n=n)], env=env, check=True)
        r.config_resetstat()
        proc = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                "--fair-sched=yes",  # the threads take turns: steadier counts (the docstring)
                f"--callgrind-out-file={out}/worker.%p",
                "-q",
                "--",
                python,
                *ARGV,
            ],
            env=env,
        )
        dump = out / f"worker.{proc.pid}"
        try:
            code = proc.wait(timeout=limit(n))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            dump.unlink(missing_ok=True)
            print(
                f"the worker under callgrind was still running after {limit(n):.0f} s "
                f"({r.zcard(READY)} of {n} jobs ready): killed",
                file=sys.stderr,
                flush=True,
            )
            continue
        if code:
            raise RuntimeError(f"the worker under callgrind exited with {code}")
        if r.zcard(READY):
            raise RuntimeError("the worker left jobs ready: the drain was not whole")
        stats = r.info("commandstats")
        got = take_apart(dump)
        dump.unlink()
        scripts, loads = (
            int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "script|load")
        )
        if loads:  # a script beyond kubeq.store.scripts.LUA: its load is in the count
            print(f"the worker loaded {loads} script(s) in its drain", file=sys.stderr)
        return {"n": n, **got, "scripts": scripts, "loads": loads, "hung": hung}
    raise RuntimeError("the worker under callgrind hung twice in a row")


def warm(r: Any, python: str, env: dict[str, str]) -> None:
    """Every script of the build loaded into the server (``kubeq.store.scripts.LUA``), so
    that no counted drain loads one (the module's docstring)."""
    subprocess.run([python, "-c", PRELOAD], env=env, check=True)


def measure(
    r: Any, url: str, out: Path, python: str, src: str, here: Path, n1: int, n2: int
) -> dict[str, Any]:
    """One build's count: drains of ``n1`` and ``n2`` jobs, differenced, per job."""
    env = {**os.environ, "KUBEQ_REDIS_URL": url, "PYTHONPATH": os.pathsep.join([src, str(here)])}
    warm(r, python, env)
    a, b = (drain(r, python, env, out, n) for n in (n1, n2))
    per = n2 - n1
    return {
        "kind": "worker",
        "n": per,
        "instructions": (b["instructions"] - a["instructions"]) / per,
        "parts": {k: (b["parts"][k] - a["parts"][k]) / per for k in PARTS},
        "scripts": (b["scripts"] - a["scripts"]) / per,
        "drains": [a, b],
    }


def rows(runs: list[dict[str, Any]], builds: list[str]) -> list[str]:
    """The worker's table: medians of the repetitions, a column per build (none without
    worker counts)."""
    mine = [r for r in runs if r["kind"] == "worker"]
    if not mine:
        return []

    def med(build: str, part: str | None = None) -> float:
        rs = [r for r in mine if r["build"] == build]
        return statistics.median(r["parts"][part] if part else r["instructions"] for r in rs)

    def cells(f: Any) -> str:
        return " | ".join(f(b) for b in builds)

    lines = [
        "",
        "| The worker's own instructions | " + " | ".join(builds) + " |",
        "|---|" + "--:|" * len(builds),
        f"| per job drained, all | {cells(lambda b: f'**{med(b) / 1000:,.1f}k**')} |",
    ]
    for part, label in PARTS.items():
        if all(med(b, part) < 0.005 * med(b) for b in builds):
            continue  # under half a percent in every build: not shown
        lines.append(
            f"| per job drained, {label} | {cells(lambda b, p=part: f'{med(b, p) / 1000:,.1f}k')} |"
        )

    def spread(b: str) -> str:
        xs = [r["instructions"] for r in mine if r["build"] == b]
        return f"{min(xs) / 1000:,.1f}k to {max(xs) / 1000:,.1f}k"

    def scripts(b: str) -> str:
        xs = [1000 * r["scripts"] for r in mine if r["build"] == b]
        return f"{statistics.median(xs):,.1f} ({min(xs):,.1f} to {max(xs):,.1f})"

    lines.append(f"| per job drained, repetitions from lowest to highest | {cells(spread)} |")
    lines.append(
        f"| scripts run (`EVALSHA`) per 1,000 jobs, median (lowest to highest) | {cells(scripts)} |"
    )
    return lines


def ratio(runs: list[dict[str, Any]], first: str, other: str) -> list[str]:
    """``first``'s worker count against ``other``'s (none without worker counts)."""
    mine = [r for r in runs if r["kind"] == "worker"]
    if not mine:
        return []

    def med(build: str) -> float:
        return statistics.median(r["instructions"] for r in mine if r["build"] == build)

    return [
        f"- `{first}` against `{other}`, the worker's own per job drained: "
        f"{med(first) / med(other):.3f}x the instructions."
    ]


def first_line(res: dict[str, Any]) -> str:
    """What the block's first line says of the worker's count."""
    n1, n2 = res["worker_drains"]
    return (
        f"; the worker's own instructions per job drained: the totals of two drains, of "
        f"{n1:,} and {n2:,} jobs, each by a fresh worker process under callgrind (its threads "
        f"scheduled fairly), differenced and divided by the {n2 - n1:,} jobs between them; "
        f"every count is of instructions executed in user space, none of the kernel's work "
        f"(sockets, epoll, futexes)"
    )
