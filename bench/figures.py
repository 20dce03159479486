"""The figures of one bench run: the median of each figure per system over the repetitions,
which drains hit their cap, the settings each system ran with; and the machine it ran on."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

RATE_GROUPS = (
    "enqueue_single",
    "enqueue_bulk",
    "enqueue_async",
    "drain_default",
    "drain_best",
    "drain_4procs",
    "drain_limited",
)


def machine() -> dict[str, Any]:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": redis_version,
        "load_avg_at_start": os.getloadavg(),
        "note": "2 cores shared with other engineers' test runs; no isolation",
    }


def redis_cpu(r: Any) -> float:
    """Seconds of CPU the Redis server has used (``INFO cpu``: system and user)."""
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def write_results(
    path: str,
    info: dict[str, Any],
    runs: list[dict[str, Any]],
    render: Callable[[dict[str, Any], str], str],
    **fields: Any,
) -> None:
    """Write a side bench's results file (``info`` from ``machine()`` at its start, the load
    at its end added here, then ``fields`` and its ``runs``) and print its block."""
    info["load_avg_at_end"] = os.getloadavg()
    res = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info,
        **fields,
        "runs": runs,
    }
    Path(path).write_text(json.dumps(res, indent=1) + "\n")
    print(render(res, path))


@contextlib.contextmanager
def private_redis(name: str) -> Iterator[str]:
    """A redis-server of a side bench's own, in a new temporary directory, stopped at the end;
    yields its URL. The caller has put the checkout's root on ``sys.path`` (tests/support
    starts the server as the tests do)."""
    from tests.support.redisserver import RedisServer

    server = RedisServer(Path(tempfile.mkdtemp(prefix=f"kubeq-{name}-")) / "redis")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def turn(items: list[T], rep: int) -> list[T]:
    """The order of one repetition: each starts one item later than the one before, so that
    no build (no system) always runs at the same point of a repetition."""
    k = rep % len(items) if items else 0
    return items[k:] + items[:k]


def median_or_none(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return statistics.median(vs) if vs else None


Table = dict[str, dict[str, Any]]


def medians(runs: list[dict[str, Any]], labels: list[str]) -> tuple[Table, Table, Table]:
    """Median of each figure per system, which drains hit the cap, and the settings used."""
    med: dict[str, dict[str, float | None]] = {s: {} for s in labels}
    notes: dict[str, dict[str, str]] = {s: {} for s in labels}
    settings: dict[str, dict[str, str]] = {s: {} for s in labels}
    for s in labels:
        mine = [r for r in runs if r["system"] == s and "error" not in r]
        for key in RATE_GROUPS:
            rs = [r for r in mine if r["group"] == key]
            med[s][key] = median_or_none([r.get("rate") for r in rs])
            if any(r.get("capped") for r in rs):
                notes[s][key] = " *"
            for r in rs:
                if r.get("settings"):
                    settings[s][key] = r["settings"]
                if r.get("api"):
                    settings[s][key] = r["api"]
        for key in ("enqueue_single", "enqueue_bulk", "drain_default", "drain_best"):
            rs = [r for r in mine if r["group"] == key]
            med[s][f"{key}_cpu"] = median_or_none([r.get("cpu_us_per_job") for r in rs])
        lat = [r for r in mine if r["group"] == "latency"]
        med[s]["latency_p50"] = median_or_none([r.get("p50_ms") for r in lat])
        med[s]["latency_p99"] = median_or_none([r.get("p99_ms") for r in lat])
        med[s]["worker_idle_mb"] = median_or_none(
            [r.get("worker_memory", {}).get("pss_mb") for r in lat]
        )
        best = [r for r in mine if r["group"] == "drain_best"]
        med[s]["worker_drain_mb"] = median_or_none(
            [r.get("worker_memory", {}).get("pss_mb") for r in best]
        )
        if lat:
            settings[s]["latency"] = lat[0].get("settings", "")
        mem = [r for r in mine if r["group"] == "memory"]
        med[s]["mem_waiting"] = median_or_none([r.get("waiting_bytes_per_job") for r in mem])
        med[s]["mem_finished"] = median_or_none([r.get("finished_bytes_per_job") for r in mem])
        if any(r.get("capped") for r in mem):
            notes[s]["mem_finished"] = " *"
    return med, notes, settings
