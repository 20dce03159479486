"""One shared Redis poll per second, fanned out to every open page, reading what is on screen.

The dashboard's Redis load must grow neither with its viewers nor with the queue names ever
registered. Each open page subscribes with its ``View``: the queues it shows (one overview
page, at most ``DASHBOARD_QUEUES_PAGE``), and whether it shows workers or the cluster. A
single ``Hub`` task reads the union of those views once per interval (the stats script for
the queues on screen, the workers' documents, the start times of the jobs they hold only for
a Workers page, the cluster only for a Scaling page) and sends each page the part it shows.
It polls only while someone subscribes; a page render reads the last poll if it is fresh and
covers the page, else polls once. A short history per queue on screen (backlog, in flight,
throughput, failures) feeds the small charts; it is kept for at most
``DASHBOARD_HISTORY_QUEUES`` queues (the most recently shown) and dropped for names whose
queue holds nothing (``listing.Directory``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from kubeq import defaults
from kubeq.dashboard.listing import Directory
from kubeq.dashboard.workerdocs import tidy
from kubeq.store import workers as workerinfo
from kubeq.store.keys import QueueKeys, queues_key
from kubeq.store.stats import read_stats_async

log = logging.getLogger("kubeq.dashboard")

ClusterReader = Callable[[], Awaitable[dict[str, Any]]]

POINT = ("backlog", "in_flight", "finished", "failed")
"""The numbers of one history point, in the order a point lists them."""


@dataclass(frozen=True)
class View:
    """What one open page shows, so the poll reads that and sends that only."""

    queues: tuple[str, ...] = ()
    workers: bool = False
    cluster: bool = False

    def within(self, other: View) -> bool:
        """Whether ``other`` (what a poll read) covers everything this view shows."""
        return (
            set(self.queues) <= set(other.queues)
            and (other.workers or not self.workers)
            and (other.cluster or not self.cluster)
        )


def union(views: Iterable[View]) -> View:
    listed = list(views)
    return View(
        queues=tuple(sorted({q for v in listed for q in v.queues})),
        workers=any(v.workers for v in listed),
        cluster=any(v.cluster for v in listed),
    )


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
    """The shared poll. ``subscribe(view)`` yields every message for a page showing ``view``;
    ``refresh(view)`` the latest one."""

    def __init__(
        self,
        client: Any,
        prefix: str = defaults.PREFIX,
        interval: float = defaults.DASHBOARD_POLL_SECONDS,
        history_seconds: int = defaults.DASHBOARD_HISTORY_SECONDS,
        cluster: ClusterReader | None = None,
        history_queues: int = defaults.DASHBOARD_HISTORY_QUEUES,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.interval = interval
        self.cluster = cluster
        self.directory = Directory(client, prefix)
        self._size = max(2, int(history_seconds / interval))
        self._history_queues = history_queues
        self.history: OrderedDict[str, deque[tuple[float, int, int, int, int]]] = OrderedDict()
        self.scaling: dict[str, deque[dict[str, Any]]] = {}
        self._rates = Rates()
        self._subscribers: dict[asyncio.Queue[bytes], View] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._latest: dict[str, Any] | None = None
        self._latest_view = View()
        self._latest_at = 0.0
        self.polls = 0

    # -- reading Redis -----

    async def _poll_once(self, view: View) -> None:
        names = list(view.queues)
        registered = await self.client.scard(queues_key(self.prefix))
        stats = await read_stats_async(self.client, names, self.prefix)
        docs = await workerinfo.read_all(self.client, self.prefix)
        workers = [tidy(d) for d in docs]
        if view.workers:
            await self._job_starts(workers)
        now = stats[0].now if stats else time.time()
        settled = self._rates.update(workers)
        rows: dict[str, dict[str, Any]] = {}
        for s in stats:
            row = asdict(s)
            done = settled.get(s.queue, {})
            row["finished"] = done.get("finished", 0)
            row["failed"] = done.get("failed", 0) + done.get("retried", 0)
            row["live_workers"] = s.live_workers
            row["busy_workers"] = s.busy_workers
            hist = self.history.pop(s.queue, None) or deque(maxlen=self._size)
            self.history[s.queue] = hist  # the most recently shown last
            hist.append((now, s.backlog, s.in_flight, row["finished"], row["failed"]))
            window = list(hist)[-int(60 / self.interval) :]
            total = sum(h[3] + h[4] for h in window)
            row["per_minute"] = sum(h[3] for h in window)
            row["failure_rate"] = (sum(h[4] for h in window) / total) if total else 0.0
            rows[s.queue] = row
        self._prune()
        message: dict[str, Any] = {
            "now": now,
            "registered": int(registered),
            "rows": rows,
            "workers": workers,
        }
        if view.cluster and self.cluster is not None:
            message["cluster"] = await self._cluster(now)
        self._latest = message
        self._latest_view = view
        self._latest_at = time.monotonic()
        self.polls += 1

    def _prune(self) -> None:
        """Keep history for the most recently shown queues only, none for a name whose queue
        holds nothing."""
        while len(self.history) > self._history_queues:
            self.history.popitem(last=False)
        for name in [n for n in self.history if self.directory.empty(n)]:
            del self.history[name]

    async def _job_starts(self, workers: list[dict[str, Any]]) -> None:
        """Set ``started_at`` of every job the workers hold (one pipeline)."""
        held = [(j["queue"], j["id"]) for w in workers for j in w["jobs"]]
        if not held:
            return
        pipe = self.client.pipeline(transaction=False)
        for queue, job_id in held:
            pipe.hget(QueueKeys.of(queue, self.prefix).job(job_id), "started_at")
        starts = dict(zip(held, await pipe.execute(), strict=True))
        for w in workers:
            for j in w["jobs"]:
                raw = starts.get((j["queue"], j["id"]))
                try:
                    j["started_at"] = int(raw) / 1000 if raw else None
                except ValueError:
                    j["started_at"] = None

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

    def message(self, view: View) -> dict[str, Any]:
        """What a page showing ``view`` gets from the latest poll."""
        latest = self._latest
        assert latest is not None
        out: dict[str, Any] = {"now": latest["now"], "registered": latest["registered"]}
        out["queues"] = [latest["rows"][q] for q in view.queues if q in latest["rows"]]
        if view.workers:
            out["workers"] = latest["workers"]
        if view.cluster and "cluster" in latest:
            out["cluster"] = latest["cluster"]
        return out

    def history_of(self, names: Iterable[str]) -> dict[str, list[list[int]]]:
        """The chart history of these queues, as [backlog, in flight, done, failed] points."""
        return {n: [list(p[1:]) for p in self.history[n]] for n in names if n in self.history}

    async def refresh(self, view: View) -> dict[str, Any]:
        """The message for ``view``, polling now if the latest is older than one interval or
        does not cover the view."""
        async with self._lock:
            stale = time.monotonic() - self._latest_at >= self.interval
            if self._latest is None or stale or not view.within(self._latest_view):
                await self._poll_once(union([view, *self._subscribers.values()]))
            self._prune()
        return self.message(view)

    # -- fan-out -----

    async def _run(self) -> None:
        while self._subscribers:
            started = time.monotonic()
            views = dict(self._subscribers)
            out: dict[View, bytes] = {}
            try:
                async with self._lock:
                    await self._poll_once(union(views.values()))
                    for v in set(views.values()):
                        out[v] = orjson.dumps(self.message(v))
            except Exception as exc:
                log.warning("dashboard poll failed: %s", exc)
                error = orjson.dumps({"error": f"cannot read Redis: {type(exc).__name__}"})
                out = dict.fromkeys(views.values(), error)
            for q, v in views.items():
                if q.full():  # a slow viewer gets the newest message, not a backlog
                    with contextlib.suppress(asyncio.QueueEmpty):
                        q.get_nowait()
                q.put_nowait(out[v])
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        self._task = None

    async def subscribe(self, view: View | None = None) -> AsyncIterator[bytes]:
        """Every message for ``view`` from now on, as JSON bytes; the poll runs while anyone
        listens."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=2)
        self._subscribers[queue] = view or View()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="kubeq-dashboard-poll")
        try:
            while True:
                data = await queue.get()
                if not data:  # end_streams(): the server is stopping
                    return
                yield data
        finally:
            self._subscribers.pop(queue, None)

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
