"""What every system's bench module shares: the CLI, the scenarios, the worker process.

A system module (``kubeq_bench.py``, ``rq_bench.py``, ...) is at once the tasks module its
worker imports and the CLI the orchestrator runs. It defines a ``System`` subclass with the
few things that differ (how to enqueue, how to start one worker process, how long the
backlog is) and calls ``main(System)``. Every scenario prints ONE JSON line on stdout.

Scenarios (the same for every system):

``enqueue --mode single|bulk|async --n N``
    N no-op jobs, one API call per job (single), through the library's bulk API (bulk), or
    one awaited call per job on one asyncio loop (async: kubeq's ``await task.adelay()``,
    arq's ``await pool.enqueue_job()``); jobs per second of wall time in the client.
``drain --settings default|best --n N``
    N no-op jobs queued before the worker starts, framed by two "mark" jobs that record
    ``time.time()`` into the Redis list ``bench:marks``; ONE worker process drains them.
    rate = N / (end mark - start mark), so the worker's start-up is not counted. A run that
    has not finished after ``--cap`` seconds is stopped and its rate is the jobs gone from
    the backlog over the time taken (``"capped": true`` in the output).
``latency --n N``
    An idle worker (default settings); N times: note ``time.time()``, enqueue a job whose
    task appends its own ``time.time()`` to ``bench:lat``, wait until it has, sleep a random
    10-50 ms so the worker is idle again. p50/p99 of (task start - enqueue call).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import redis

HERE = Path(__file__).resolve().parent
URL_ENV = "BENCH_REDIS_URL"
MARKS = "bench:marks"
LAT = "bench:lat"

_client: redis.Redis | None = None


def url() -> str:
    return os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0")


def client() -> redis.Redis:
    """A plain redis-py client for the tasks' marks (one per worker process)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(url())
    return _client


def record_mark(tag: str) -> None:
    client().rpush(MARKS, f"{tag} {time.time():.6f}")


def record_latency(i: int) -> None:
    client().rpush(LAT, f"{i} {time.time():.6f}")


class System:
    """What a system module provides. ``self.r`` is a redis-py client for the harness."""

    name = "?"
    settings_doc: ClassVar[dict[str, str]] = {}
    """Settings name -> what it means for this system (printed into the results)."""
    bulk_api: str | None = None
    """The library's bulk enqueue API, or None when it has none."""
    async_api: str | None = None
    """The library's asyncio enqueue call, or None when it has none."""

    def __init__(self, redis_url: str) -> None:
        self.url = redis_url
        self.r = redis.Redis.from_url(redis_url)

    # -- to implement -----
    settings = "default"
    """The drain's settings (set before the prefill)."""

    def setup(self) -> None:
        """Create the client objects (after FLUSHALL)."""

    def enqueue_noop(self, n: int) -> None:
        raise NotImplementedError

    def enqueue_noop_bulk(self, n: int) -> None:
        raise NotImplementedError

    def enqueue_noop_async(self, n: int) -> None:
        """n awaited enqueue calls, one after another, on one event loop."""
        raise NotImplementedError

    def enqueue_mark(self, tag: str) -> None:
        raise NotImplementedError

    def enqueue_latency(self, i: int) -> None:
        raise NotImplementedError

    def worker_argv(self, settings: str) -> list[str]:
        raise NotImplementedError

    def backlog(self) -> int:
        """Jobs still waiting (for a capped drain)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release client objects."""

    def prefill(self, n: int) -> None:
        """Queue n no-op jobs as fast as possible (not timed)."""
        step = 5000
        for start in range(0, n, step):
            self.enqueue_noop_bulk(min(step, n - start))


class WorkerProcess:
    """One worker process (its own session, so its children go with it)."""

    def __init__(self, argv: list[str], log: Path) -> None:
        # BENCH_PYTHONPATH (run.py --kubeq-path): a copy of the library with a proposed change
        path = os.pathsep.join(p for p in (os.environ.get("BENCH_PYTHONPATH"), str(HERE)) if p)
        env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "KUBEQ_REDIS_URL": url()}
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=HERE,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # whatever the worker forked and left behind in its session
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def _wait_list(r: redis.Redis, key: str, length: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(r.llen(key)) >= length:  # type: ignore[arg-type]
            return True
        time.sleep(0.002)
    return False


def scenario_enqueue(sysm: System, mode: str, n: int) -> dict[str, Any]:
    if mode == "bulk" and sysm.bulk_api is None:
        return {"rate": None, "note": "no bulk API"}
    if mode == "async" and sysm.async_api is None:
        return {"rate": None, "note": "no asyncio API"}
    fn = {
        "bulk": sysm.enqueue_noop_bulk,
        "async": sysm.enqueue_noop_async,
    }.get(mode, sysm.enqueue_noop)
    t0 = time.perf_counter()
    fn(n)
    dt = time.perf_counter() - t0
    out: dict[str, Any] = {"rate": n / dt, "seconds": dt}
    if mode in ("bulk", "async"):
        out["api"] = sysm.bulk_api if mode == "bulk" else sysm.async_api
    return out


def scenario_drain(sysm: System, settings: str, n: int, cap: float, log: Path) -> dict[str, Any]:
    sysm.settings = settings  # kubeq's "limited" prefills a rate-limited task
    sysm.enqueue_mark("start")
    time.sleep(0.01)  # arq orders by enqueue ms: keep the marks outside the no-ops
    sysm.prefill(n)
    time.sleep(0.01)
    sysm.enqueue_mark("end")
    worker = WorkerProcess(sysm.worker_argv(settings), log)
    try:
        if not _wait_list(sysm.r, MARKS, 1, 60):
            raise SystemExit(f"{sysm.name}: the worker did not start a job in 60 s; see {log}")
        started = float(sysm.r.lindex(MARKS, 0).split()[1])  # type: ignore[union-attr]
        limit = started + cap - time.time()
        capped = not _wait_list(sysm.r, MARKS, 2, max(0.0, limit))
        if capped:
            now = time.time()
            left = sysm.backlog()
            done = max(0, n - left)
            return {
                "rate": done / (now - started),
                "capped": True,
                "jobs_done": done,
                "seconds": now - started,
                "settings": sysm.settings_doc[settings],
            }
        end = float(sysm.r.lindex(MARKS, 1).split()[1])  # type: ignore[union-attr]
        return {
            "rate": n / (end - started),
            "seconds": end - started,
            "settings": sysm.settings_doc[settings],
        }
    finally:
        worker.stop()


def scenario_latency(sysm: System, n: int, log: Path) -> dict[str, Any]:
    worker = WorkerProcess(sysm.worker_argv("default"), log)
    rng = random.Random(7)
    try:
        sysm.enqueue_latency(-1)  # warm-up: the worker is up and has imported everything
        if not _wait_list(sysm.r, LAT, 1, 60):
            raise SystemExit(f"{sysm.name}: the worker did not run a job in 60 s; see {log}")
        time.sleep(0.5)
        sent: list[float] = []
        for i in range(n):
            sent.append(time.time())
            sysm.enqueue_latency(i)
            if not _wait_list(sysm.r, LAT, i + 2, 30):
                raise SystemExit(f"{sysm.name}: job {i} did not start in 30 s; see {log}")
            time.sleep(rng.uniform(0.010, 0.050))
        starts = {}
        for raw in sysm.r.lrange(LAT, 1, -1):  # type: ignore[union-attr]
            i, t = raw.split()
            starts[int(i)] = float(t)
        lat = sorted((starts[i] - sent[i]) * 1000 for i in range(n))
        q = statistics.quantiles(lat, n=100, method="inclusive")
        return {
            "p50_ms": statistics.median(lat),
            "p99_ms": q[98],
            "max_ms": lat[-1],
            "settings": sysm.settings_doc["default"],
        }
    finally:
        worker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description="one benchmark scenario of one system")
    ap.add_argument("system", help="kubeq, rq, celery, arq or dramatiq")
    ap.add_argument("scenario", choices=["enqueue", "drain", "latency", "settings"])
    ap.add_argument("--redis-url", default=url())
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--mode", choices=["single", "bulk", "async"], default="single")
    ap.add_argument("--settings", choices=["default", "best", "limited"], default="default")
    ap.add_argument("--cap", type=float, default=60.0, help="drain: seconds before giving up")
    ap.add_argument("--log", default=None, help="the worker's log file")
    a = ap.parse_args()
    os.environ[URL_ENV] = a.redis_url  # before the tasks module creates its clients
    import importlib

    system_cls: type[System] = importlib.import_module(f"{a.system}_bench").SYSTEM
    sysm = system_cls(a.redis_url)
    if a.scenario == "settings":
        print(
            json.dumps(
                {"system": sysm.name, "settings": sysm.settings_doc, "bulk_api": sysm.bulk_api}
            )
        )
        return
    sysm.r.flushall()
    sysm.setup()
    log = Path(a.log or f"/tmp/bench-{sysm.name}-worker.log")
    try:
        if a.scenario == "enqueue":
            out = scenario_enqueue(sysm, a.mode, a.n)
            out["mode"] = a.mode
        elif a.scenario == "drain":
            out = scenario_drain(sysm, a.settings, a.n, a.cap, log)
            out["settings_name"] = a.settings
        else:
            out = scenario_latency(sysm, a.n, log)
    finally:
        sysm.close()
        sysm.r.flushall()
    out.update(system=sysm.name, scenario=a.scenario, n=a.n)
    print(json.dumps(out), flush=True)
    sys.stdout.flush()


def venv_bin(name: str) -> str:
    """A console script of the venv running this module."""
    return str(Path(sys.executable).with_name(name))
