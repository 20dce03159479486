"""Polling and round-trip counting for the redis-tier tests."""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Callable
from pathlib import Path

import redis
import redis.asyncio as aioredis

from kubeq.options import TaskOptions
from kubeq.store.keys import QueueKeys
from kubeq.worker import handoff
from localcluster.pytest_plugin import wait_for


def wait_until(
    predicate: Callable[[], object], timeout: float = 30, what: str | Callable[[], str] = ""
) -> None:
    """Poll until predicate() is truthy; fail after timeout (never a timing assertion).
    ``what`` names the wait, or says at the timeout what a failure needs explained."""
    wait_for(predicate, timeout=timeout, interval=0.05, message=what or repr(predicate))


def evalsha_calls(client: redis.Redis) -> int:
    """How many EVALSHA commands the server has run (to count round trips of scripts)."""
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def tally_marks(marks: Path, jobs: int) -> tuple[list[int], int, float]:
    """(lost job numbers, jobs run more than once, the longest gap in s between two runs)
    from the marks file qtasks.mark appends to ("<n> <time>" per run), counted outside
    Redis so the figures hold even for what Redis itself loses."""
    lines = marks.read_text().splitlines()
    runs = collections.Counter(int(line.split()[0]) for line in lines)
    stamps = sorted(float(line.split()[1]) for line in lines)
    stall = max(b - a for a, b in itertools.pairwise(stamps))
    lost = [i for i in range(jobs) if runs[i] == 0]
    twice = sum(1 for n in runs.values() if n > 1)
    return lost, twice, stall


def max_running(spans: list[bytes]) -> int:
    """The most jobs running at once, from their recorded "s|e <ms> <id>" starts and ends (an
    end at the same millisecond as a start counts first: the slot was freed before it was
    taken)."""
    events = []
    for raw in spans:
        kind, at, _ = raw.decode().split()
        events.append((int(at), 0 if kind == "e" else 1))
    running = best = 0
    for _, is_start in sorted(events):
        running += 1 if is_start else -1
        best = max(best, running)
    return best


def hand_off_now(url: str, keys: QueueKeys, ids: list[str]) -> None:
    """The hand-off of ``ids`` of ``keys``, run once now, as a worker's would."""

    async def run() -> None:
        client = aioredis.Redis.from_url(url)
        try:
            await handoff.hand_off(client, keys, ids, lambda _name: TaskOptions())
        finally:
            await client.aclose()

    asyncio.run(run())
