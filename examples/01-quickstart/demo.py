"""`make demo-local`: the kubeq library on this machine, end to end, in seconds.

Starts a private redis-server, two `kubeq worker` processes of tasks.py, enqueues a burst
of jobs (with a progress bar), and shows `kubeq stats --watch` until the queue drains.
Then it checks every result and stops what it started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STATE = ROOT / ".demo"
KUBEQ = str(Path(sys.executable).with_name("kubeq"))
JOBS = 3000
console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is missing: `make demo` installs it (apt-get install redis-server)")
    STATE.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(STATE),
            "--appendonly",
            "no",
        ],
        stdout=open(STATE / "redis.log", "wb"),  # noqa: SIM115 - lives as long as redis
        stderr=subprocess.STDOUT,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    sys.exit(f"redis-server did not start; see {STATE / 'redis.log'}")


def main() -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    os.environ["KUBEQ_REDIS_URL"] = url
    console.rule("[bold]kubeq demo")
    console.print(f"redis-server on {url} (state in .demo/)")
    redis_proc = start_redis(port)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(2):
            workers.append(
                subprocess.Popen(
                    [KUBEQ, "worker", "tasks", "--queue", "default", "--concurrency", "8"],
                    cwd=HERE,
                    stdout=open(STATE / f"worker-{n}.log", "wb"),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                )
            )
        console.print("2 workers: kubeq worker tasks --concurrency 8 (logs in .demo/)")
        sys.path.insert(0, str(HERE))
        import tasks

        jobs = []
        started = time.monotonic()
        with Progress(console=console) as progress:
            bar = progress.add_task("enqueueing thumbnails", total=JOBS)
            for start in range(0, JOBS, 100):
                calls = [tasks.make_thumbnail.s(i, 256) for i in range(start, start + 100)]
                jobs += tasks.app.enqueue_many(calls)
                progress.advance(bar, len(calls))
        email = tasks.send_email.delay("ops@example.com", "thumbnails are on their way")
        subprocess.run(
            [KUBEQ, "stats", "--watch", "--interval", "0.5", "--until-empty", "--queue", "default"],
            check=True,
        )
        console.print()
        results = [job.result(timeout=60) for job in jobs]
        elapsed = time.monotonic() - started
        ok = sum(1 for i, r in enumerate(results) if r["photo"] == i)
        retried = sum(job.info().attempts > 1 for job in jobs)
        console.print(
            f"[green]{ok}/{JOBS} results present[/green] in {elapsed:.1f} s "
            f"({retried} needed a retry); email: {email.result(timeout=10)}"
        )
        console.print("Try: .venv/bin/kubeq --help   (stats, enqueue, dlq, pause, ...)")
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
        redis_proc.terminate()
        redis_proc.wait(10)


if __name__ == "__main__":
    main()
