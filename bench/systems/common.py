"""What every system's bench module shares: the scenarios and the worker process.

A system module (``kubeq_bench.py``, ``rq_bench.py``, ...) is the tasks module its worker
imports. It defines a ``System`` subclass (``SYSTEM``) with the few things that differ (how
to enqueue, how to start one worker process, how long the backlog is); ``cli.py SYSTEM
SCENARIO``, which the orchestrator runs, runs one scenario with it and prints ONE JSON line
on stdout.

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
    10-50 ms so the worker is idle again. p50/p99 of (task start - enqueue call). Also the
    idle worker's memory (``worker_memory``).
``cpu_us_per_job``
    Enqueue: the client process's CPU time per job; drain: the worker processes' CPU time
    (user + system, from /proc) between the start and end marks per job. Another engineer's
    load on the shared cores slows the rates far more than it moves these.
``drain ... --procs P``
    The same drain with P worker processes of the given settings started at once (their
    start-up overlaps the first jobs: it is counted). Every drain also samples the memory
    of the worker's processes every 0.2 s (``worker_memory``, the peak while draining).
``memory --n N --finished M``
    Redis's ``used_memory`` (INFO memory, less the clients' buffers): what N no-op jobs
    queued add (bytes per waiting job), and, after a FLUSHALL, what M jobs drained by one
    worker (best settings), the worker stopped, leave (bytes per finished job kept, with
    its result where the system keeps one). Each after 5,000 jobs queued (drained) first:
    they pay the system's fixed costs (its scripts, a worker's keys: ``fixed_bytes``), and
    bring a queue's counters (kubeq's lease tokens) past the widths of a young queue, so
    that the jobs counted cost what they cost in a queue that has run for a while.
``curve --n N --window W``
    The cost of a deep backlog: N no-op jobs queued, then the p50/p99 of 500 one-call
    enqueues on top of them (the worker not running), then one worker (best settings)
    drains for W seconds: jobs gone from the backlog / time.

Worker memory is the sum over the worker's processes (its session: a supervisor, a prefork
child, a work horse) of RSS and of PSS (``/proc/PID/smaps_rollup``; PSS splits the pages
forked processes share, so a sum over a process tree is not double-counted).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import redis
from marks import WOKEN, push, wait_list
from procs import MemorySampler, WorkerProcess, session_cpu

HERE = Path(__file__).resolve().parent
URL_ENV = "BENCH_REDIS_URL"
MARKS = "bench:marks"
LAT = "bench:lat"
WARM_JOBS = 5000  # memory: jobs queued (drained) before the ones counted

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
    push(client(), MARKS, f"{tag} {time.time():.6f}")


def record_latency(i: int) -> None:
    push(client(), LAT, f"{i} {time.time():.6f}")


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

    def worker_argv_n(self, settings: str, i: int) -> list[str]:
        """The argv of the i-th of several worker processes (a system that needs a unique
        name per process overrides this)."""
        del i
        return self.worker_argv(settings)

    def close(self) -> None:
        """Release client objects."""

    def prefill(self, n: int) -> None:
        """Queue n no-op jobs as fast as possible (not timed)."""
        step = 5000
        for start in range(0, n, step):
            self.enqueue_noop_bulk(min(step, n - start))


def used_memory(r: redis.Redis) -> int:
    """``used_memory`` less the clients' buffers (``mem_clients_normal``): a bulk enqueue
    leaves its connection a query buffer of megabytes that Redis shrinks only later, which
    would be counted as jobs otherwise."""
    info: dict[str, Any] = r.info("memory")  # type: ignore[assignment]
    return int(info["used_memory"]) - int(info.get("mem_clients_normal", 0))


def scenario_enqueue(sysm: System, mode: str, n: int) -> dict[str, Any]:
    if mode == "bulk" and sysm.bulk_api is None:
        return {"rate": None, "note": "no bulk API"}
    if mode == "async" and sysm.async_api is None:
        return {"rate": None, "note": "no asyncio API"}
    fn = {
        "bulk": sysm.enqueue_noop_bulk,
        "async": sysm.enqueue_noop_async,
    }.get(mode, sysm.enqueue_noop)
    t0, c0 = time.perf_counter(), time.process_time()
    fn(n)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    out: dict[str, Any] = {"rate": n / dt, "seconds": dt, "cpu_us_per_job": cpu / n * 1e6}
    if mode in ("bulk", "async"):
        out["api"] = sysm.bulk_api if mode == "bulk" else sysm.async_api
    return out


def scenario_drain(
    sysm: System, settings: str, n: int, cap: float, log: Path, procs: int = 1
) -> dict[str, Any]:
    sysm.settings = settings  # kubeq's "limited" prefills a rate-limited task
    sysm.enqueue_mark("start")
    time.sleep(0.01)  # arq orders by enqueue ms: keep the marks outside the no-ops
    sysm.prefill(n)
    time.sleep(0.01)
    sysm.enqueue_mark("end")
    workers = [WorkerProcess(sysm.worker_argv_n(settings, i), log, url()) for i in range(procs)]
    sampler = MemorySampler(workers)
    try:

        def cpu_now() -> float:
            return sum(session_cpu(w.proc.pid) for w in workers)

        out = _timed_drain(sysm, settings, n, cap, log, cpu_now)
        out["worker_memory"] = sampler.stop()
        if procs > 1:
            out["procs"] = procs
        return out
    finally:
        sampler.stop()
        for w in workers:
            w.stop()


def _timed_drain(
    sysm: System, settings: str, n: int, cap: float, log: Path, cpu_now: Any
) -> dict[str, Any]:
    """Wait for the start and end marks; the rate between them (or to the cap), and the
    workers' CPU time per job between them (start-up not counted; less sensitive than the
    rate to other work on the machine)."""
    if not wait_list(sysm.r, MARKS, 1, 60):
        raise SystemExit(f"{sysm.name}: the worker did not start a job in 60 s; see {log}")
    cpu0 = cpu_now()
    started = float(sysm.r.lindex(MARKS, 0).split()[1])  # type: ignore[union-attr]
    limit = started + cap - time.time()
    capped = not wait_list(sysm.r, MARKS, 2, max(0.0, limit))
    if capped:
        now = time.time()
        left = sysm.backlog()
        done = max(0, n - left)
        return {
            "rate": done / (now - started),
            "cpu_us_per_job": (cpu_now() - cpu0) / done * 1e6 if done else None,
            "capped": True,
            "jobs_done": done,
            "seconds": now - started,
            "settings": sysm.settings_doc[settings],
        }
    cpu1 = cpu_now()
    end = float(sysm.r.lindex(MARKS, 1).split()[1])  # type: ignore[union-attr]
    return {
        "rate": n / (end - started),
        "cpu_us_per_job": (cpu1 - cpu0) / n * 1e6,
        "seconds": end - started,
        "settings": sysm.settings_doc[settings],
    }


def scenario_latency(sysm: System, n: int, log: Path) -> dict[str, Any]:
    worker = WorkerProcess(sysm.worker_argv("default"), log, url())
    rng = random.Random(7)
    try:
        sysm.enqueue_latency(-1)  # warm-up: the worker is up and has imported everything
        if not wait_list(sysm.r, LAT, 1, 60):
            raise SystemExit(f"{sysm.name}: the worker did not run a job in 60 s; see {log}")
        time.sleep(0.5)
        idle = worker.memory()  # up, everything imported, one job run, idle
        sent: list[float] = []
        for i in range(n):
            sent.append(time.time())
            sysm.enqueue_latency(i)
            if not wait_list(sysm.r, LAT, i + 2, 30):
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
            "worker_memory": {k: round(v, 1) for k, v in idle.items()},
            "settings": sysm.settings_doc["default"],
        }
    finally:
        worker.stop()


def scenario_memory(
    sysm: System, n: int, finished: int, cap: float, log: Path, warm: int = WARM_JOBS
) -> dict[str, Any]:
    """Bytes of Redis memory per waiting job and per finished job kept: what `n` (`finished`)
    more jobs add once `warm` jobs have been queued (drained) first. The warm jobs pay what a
    system pays once (the scripts it loads into the server's cache, a worker's keys), which
    otherwise would be spread over the jobs counted and would move with the order the
    systems run in (a script already cached is not loaded again); it is reported apart as
    ``fixed_bytes``. They also take a queue's counters past 4,095, the largest number a
    listpack stores in two bytes: kubeq's lease token is kept in a finished job, and a young
    queue's small tokens would make its records look smaller than a working queue's."""
    empty = used_memory(sysm.r)
    sysm.prefill(warm)
    base = used_memory(sysm.r)
    sysm.prefill(n)
    waiting = used_memory(sysm.r)
    sysm.r.flushall()
    empty2 = used_memory(sysm.r)
    first = _drain_kept(sysm, warm, cap, log)
    base2 = used_memory(sysm.r)
    drained = _drain_kept(sysm, finished, cap, log)
    done_mem = used_memory(sysm.r)
    done = finished if not drained.get("capped") else int(drained.get("jobs_done", 0))
    first_done = warm if not first.get("capped") else int(first.get("jobs_done", 0))
    per_waiting = (waiting - base) / n
    per_finished = (done_mem - base2) / done if done else None
    return {
        "waiting_bytes_per_job": per_waiting,
        "finished_bytes_per_job": per_finished,
        "finished_jobs": done,
        "warm_jobs": warm,
        "fixed_bytes": {
            "waiting": round(base - empty - warm * per_waiting),
            "finished": (
                round(base2 - empty2 - first_done * per_finished) if per_finished else None
            ),
        },
        "used_memory": {
            "empty": empty,
            "warm": base,
            "waiting": waiting,
            "empty2": empty2,
            "warm2": base2,
            "finished": done_mem,
        },
        "capped": bool(drained.get("capped") or first.get("capped")),
        "settings": sysm.settings_doc["best"],
    }


def _drain_kept(sysm: System, n: int, cap: float, log: Path) -> dict[str, Any]:
    """Drain n jobs with one worker (best settings), stop it, and leave what stays."""
    drained = scenario_drain(sysm, "best", n, cap, log)
    time.sleep(1.0)  # the last acknowledgements and results
    sysm.r.delete(MARKS, MARKS + WOKEN)
    return drained


def scenario_curve(sysm: System, n: int, window: float, log: Path) -> dict[str, Any]:
    """Enqueue latency and drain rate with n jobs already waiting."""
    sysm.prefill(n)
    lat: list[float] = []
    for _ in range(500):
        t0 = time.perf_counter()
        sysm.enqueue_noop(1)
        lat.append((time.perf_counter() - t0) * 1000)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    total = sysm.backlog()
    worker = WorkerProcess(sysm.worker_argv("best"), log, url())
    try:
        deadline = time.monotonic() + 60
        while sysm.backlog() >= total:  # the worker has started taking jobs
            if time.monotonic() > deadline:
                raise SystemExit(f"{sysm.name}: the worker took no job in 60 s; see {log}")
            time.sleep(0.005)
        t0, left0 = time.monotonic(), sysm.backlog()
        while time.monotonic() - t0 < window and sysm.backlog() > 0:
            time.sleep(0.05)
        t1, left1 = time.monotonic(), sysm.backlog()
    finally:
        worker.stop()
    return {
        "backlog": n,
        "enqueue_p50_ms": statistics.median(lat),
        "enqueue_p99_ms": q[98],
        "rate": (left0 - left1) / (t1 - t0),
        "seconds": t1 - t0,
        "settings": sysm.settings_doc["best"],
    }


def venv_bin(name: str) -> str:
    """A console script of the venv running this module."""
    return str(Path(sys.executable).with_name(name))
