"""One shared Redis poll per second, fanned out to every open page.

The dashboard's Redis load must not grow with its viewers. A single ``Hub`` task reads every
queue's numbers with the one-round-trip stats script, the workers' documents and the start
time of the jobs they hold, turns them into one JSON message, and hands that same message to
every subscriber (each server-sent-events stream). It polls only while someone subscribes;
a page render reads the last snapshot, polling once if it is stale. The message also keeps a
short history per queue (backlog, in flight, throughput, failures) for the small charts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any

import orjson

from kubeq import defaults
from kubeq.store import workers as workerinfo
from kubeq.store.jobfields import text
from kubeq.store.keys import QueueKeys, queues_key
from kubeq.store.stats import read_stats_async

log = logging.getLogger("kubeq.dashboard")

ClusterReader = Callable[[], Awaitable[dict[str, Any]]]


class Rates:
    """Jobs settled per queue between two polls, from the workers' cumulative counters.

    A counter seen for the first time counts from zero only when its worker appeared after
    the first poll (it started meanwhile); otherwise it is a baseline. A counter that went
    down belongs to a restarted process with the same id and counts from zero.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, str], int] = {}
        self._primed = False

    def update(self, workers: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
        seen: dict[tuple[str, str, str], int] = {}
        out: dict[str, dict[str, int]] = {}
        for w in workers:
            wid = str(w.get("id", ""))
            counts = w.get("counts") or {}
            for queue, by_outcome in counts.items():
                for outcome, value in by_outcome.items():
                    key = (wid, str(queue), str(outcome))
                    seen[key] = int(value)
                    before = self._last.get(key)
                    if before is None:
                        delta = int(value) if self._primed else 0
                    else:
                        delta = int(value) - before if int(value) >= before else int(value)
                    if delta:
                        per = out.setdefault(str(queue), {})
                        per[str(outcome)] = per.get(str(outcome), 0) + delta
        self._last = seen
        self._primed = True
        return out


class Hub:
    """The shared poll. ``subscribe()`` yields every message; ``snapshot()`` the latest."""

    def __init__(
        self,
        client: Any,
        prefix: str = defaults.PREFIX,
        interval: float = defaults.DASHBOARD_POLL_SECONDS,
        history_seconds: int = defaults.DASHBOARD_HISTORY_SECONDS,
        cluster: ClusterReader | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.interval = interval
        self.cluster = cluster
        self._size = max(2, int(history_seconds / interval))
        self.history: dict[str, deque[dict[str, Any]]] = {}
        self.scaling: dict[str, deque[dict[str, Any]]] = {}
        self._rates = Rates()
        self._subscribers: set[asyncio.Queue[bytes]] = set()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._latest: dict[str, Any] | None = None
        self._latest_json = b""
        self._latest_at = 0.0
        self.polls = 0

    # -- reading Redis -----

    async def _poll_once(self) -> None:
        names = sorted(text(n) for n in await self.client.smembers(queues_key(self.prefix)))
        stats = await read_stats_async(self.client, names, self.prefix)
        workers = await workerinfo.read_all(self.client, self.prefix)
        held = [(j["queue"], j["id"]) for w in workers for j in w.get("jobs", [])]
        if held:
            pipe = self.client.pipeline(transaction=False)
            for queue, job_id in held:
                pipe.hget(QueueKeys.of(queue, self.prefix).job(job_id), "started_at")
            starts = dict(zip(held, await pipe.execute(), strict=True))
            for w in workers:
                for j in w.get("jobs", []):
                    raw = starts.get((j["queue"], j["id"]))
                    j["started_at"] = int(raw) / 1000 if raw else None
        now = stats[0].now if stats else time.time()
        settled = self._rates.update(workers)
        queues = []
        for s in stats:
            row = asdict(s)
            done = settled.get(s.queue, {})
            row["finished"] = done.get("finished", 0)
            row["failed"] = done.get("failed", 0) + done.get("retried", 0)
            row["live_workers"] = s.live_workers
            row["busy_workers"] = s.busy_workers
            hist = self.history.setdefault(s.queue, deque(maxlen=self._size))
            hist.append(
                {
                    "t": now,
                    "backlog": s.backlog,
                    "in_flight": s.in_flight,
                    "finished": row["finished"],
                    "failed": row["failed"],
                }
            )
            window = list(hist)[-int(60 / self.interval) :]
            total = sum(h["finished"] + h["failed"] for h in window)
            row["per_minute"] = sum(h["finished"] for h in window)
            row["failure_rate"] = (sum(h["failed"] for h in window) / total) if total else 0.0
            queues.append(row)
        message: dict[str, Any] = {"now": now, "queues": queues, "workers": workers}
        if self.cluster is not None:
            message["cluster"] = await self._cluster(now)
        self._latest = message
        self._latest_json = orjson.dumps(message)
        self._latest_at = time.monotonic()
        self.polls += 1

    async def _cluster(self, now: float) -> dict[str, Any]:
        assert self.cluster is not None
        try:
            view = await self.cluster()
        except Exception as exc:  # the page says so; Redis numbers still flow
            return {"error": f"cannot read the cluster: {exc}", "taskqueues": []}
        for tq in view.get("taskqueues", []):
            key = f"{tq['namespace']}/{tq['name']}"
            series = self.scaling.setdefault(key, deque(maxlen=self._size))
            series.append(
                {
                    "t": now,
                    "desired": tq.get("desired"),
                    "current": tq.get("current"),
                    "backlog": tq.get("backlog"),
                    "in_flight": tq.get("in_flight"),
                }
            )
        return view

    async def refresh(self) -> dict[str, Any]:
        """The latest message, polling now if it is older than one interval."""
        async with self._lock:
            if self._latest is None or time.monotonic() - self._latest_at >= self.interval:
                await self._poll_once()
        assert self._latest is not None
        return self._latest

    # -- fan-out -----

    async def _run(self) -> None:
        while self._subscribers:
            started = time.monotonic()
            try:
                async with self._lock:
                    await self._poll_once()
                data = self._latest_json
            except Exception as exc:
                log.warning("dashboard poll failed: %s", exc)
                data = orjson.dumps({"error": f"cannot read Redis: {type(exc).__name__}"})
            for q in list(self._subscribers):
                if q.full():  # a slow viewer gets the newest message, not a backlog
                    with contextlib.suppress(asyncio.QueueEmpty):
                        q.get_nowait()
                q.put_nowait(data)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        self._task = None

    async def subscribe(self) -> AsyncIterator[bytes]:
        """Every message from now on, as JSON bytes; the poll runs while anyone listens."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=2)
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="kubeq-dashboard-poll")
        try:
            while True:
                data = await queue.get()
                if not data:  # end_streams(): the server is stopping
                    return
                yield data
        finally:
            self._subscribers.discard(queue)

    def end_streams(self) -> None:
        """End every open stream (on shutdown), so the server need not wait for browsers."""
        for q in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()
            q.put_nowait(b"")

    @property
    def viewers(self) -> int:
        return len(self._subscribers)

    async def close(self) -> None:
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
