"""Where kubeq's time goes: py-spy profiles of the worker draining no-op jobs and of the
client enqueueing them one call at a time and in bulk, summarised as the top frames.

    .venv/bin/python bench/profile_kubeq.py --py-spy ~/.cache/kubeq/bench-tools-*/bin/py-spy
        [--n 20000] [--concurrency 32] [--out bench/results/profile-<date>]

Starts its own redis-server. Writes ``<out>-worker.txt`` / ``<out>-enqueue.txt`` /
``<out>-bulk.txt`` (collapsed stacks, py-spy's raw format, loadable in speedscope) and
prints for each the top functions by own time and by inclusive time, as a percentage of
samples. Only threads holding the
GIL are sampled (py-spy --gil): idle pool threads and waits on Redis do not count.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE / "systems")]

from tests.support.redisserver import RedisServer  # noqa: E402


def summarise(raw: Path, top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if "_find_and_load" in line:  # imports at start-up are not the hot path
            continue
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
            if " (" in f
            else f
            for f in stack.split(";")
        ]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--py-spy", required=True)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--out", default=str(HERE / "results" / f"profile-{dt.date.today()}"))
    ap.add_argument("--kubeq-path", default=None, help="profile kubeq from this directory")
    a = ap.parse_args()
    if a.kubeq_path:
        os.environ["BENCH_PYTHONPATH"] = a.kubeq_path
    work = Path(tempfile.mkdtemp(prefix="kubeq-profile-"))
    server = RedisServer(work / "redis")
    server.start()
    env = {
        **os.environ,
        "BENCH_REDIS_URL": server.url,
        "KUBEQ_REDIS_URL": server.url,
        # BENCH_PYTHONPATH: profile a copy of the library with a proposed change
        "PYTHONPATH": os.pathsep.join(
            p for p in (os.environ.get("BENCH_PYTHONPATH"), str(HERE / "systems")) if p
        ),
    }
    os.environ.update(env)
    try:
        import kubeq_bench

        kubeq_bench.app.redis_url = server.url
        sysm = kubeq_bench.Kubeq(server.url)
        sysm.setup()
        sysm.prefill(a.n)
        kubeq = str(Path(sys.executable).with_name("kubeq"))
        raw = Path(f"{a.out}-worker.txt").resolve()
        spy = subprocess.Popen(
            [
                a.py_spy,
                "record",
                "--format",
                "raw",
                "--rate",
                "250",
                "--gil",
                "-o",
                str(raw),
                "--",
                kubeq,
                "worker",
                "kubeq_bench",
                "--queue",
                "default",
                "--concurrency",
                str(a.concurrency),
                "--log-level",
                "warning",
            ],
            cwd=HERE / "systems",
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        t0 = time.monotonic()
        while sysm.backlog() > 0 or int(sysm.app.queue().stats().in_flight) > 0:
            time.sleep(0.05)
            if time.monotonic() - t0 > 300:
                break
        took = time.monotonic() - t0
        worker_pids = subprocess.run(
            ["pgrep", "-P", str(spy.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        for pid in worker_pids:
            os.kill(int(pid), 15)
        spy.wait(60)
        print(f"worker: {a.n} jobs in {took:.1f} s under py-spy ({a.n / took:,.0f}/s)")
        print(summarise(raw))
        sysm.close()

        raw_e = Path(f"{a.out}-enqueue.txt").resolve()
        code = (
            f"import sys; sys.path.insert(0, {str(HERE / 'systems')!r}); import kubeq_bench as k; "
            f"k.app.redis_url = {server.url!r}\nfor _ in range({a.n // 4}): k.noop.delay()"
        )
        subprocess.run(
            [
                a.py_spy,
                "record",
                "--format",
                "raw",
                "--rate",
                "250",
                "-o",
                str(raw_e),
                "--",
                sys.executable,
                "-c",
                code,
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(f"\nenqueue, one call per job ({a.n // 4} calls of noop.delay()):")
        print(summarise(raw_e))

        raw_b = Path(f"{a.out}-bulk.txt").resolve()
        code = (
            f"import sys; sys.path.insert(0, {str(HERE / 'systems')!r}); "
            f"import kubeq_bench as k; k.app.redis_url = {server.url!r}\n"
            f"for _ in range(5): k.app.enqueue_many([k.noop.s() for _ in range({a.n})])"
        )
        spy_b = [a.py_spy, "record", "--format", "raw", "--rate", "250", "-o", str(raw_b)]
        subprocess.run(
            [*spy_b, "--", sys.executable, "-c", code],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(f"\nenqueue, bulk (5 x app.enqueue_many of {a.n} calls):")
        print(summarise(raw_b))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
