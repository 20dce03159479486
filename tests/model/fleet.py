"""Real workers stepped by hand: the worker's own fetch, ack, heartbeat and hand-off code,
with the runs in between decided by the state machine instead of by task code.

``ModelWorker`` is ``kubeq.worker.loop.Worker`` with two seams replaced: a fetched job is
recorded as a run instead of being started on the loop or handed to its thread lane
(``_start``, ``_to_lane``), and the hand-off an
ack asks for is kept until the machine runs it (``_start_hand_off``), so a worker can die
between its ack and its hand-off. Everything else is the worker's code: ``_round_trip``
(one pipeline of acks and a fetch, the adoption of its own re-delivered job),
``_heartbeat`` (lease renewal through ``leases.renew``, stopping aborted runs through
``_abort``), ``_hand_off`` and ``handoff.sweep`` with its ``route`` to partitions.

A fetch is the loop's pass, or the hot wait's fetch written behind a BLPOP where the worker
would make one (nothing to acknowledge, a free slot, soon after a job); a run may also end
while such a wait is blocked, its fetch then running after the run's ack.

``Fleet`` owns one event loop for the whole example: each step runs one coroutine of one
worker to its end, so nothing happens between steps and no step sleeps. ``make_app`` is
the machine's App: a plain, a concurrency-limited and a rate-limited task, and a queue of
two partitions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import kubeq
from kubeq.outcomes import Settlement
from kubeq.store.keys import QueueKeys
from kubeq.worker import handoff
from kubeq.worker.delivery import Delivery
from kubeq.worker.loop import Worker
from kubeq.worker.settings import WorkerSettings

LEASE_SECONDS = 60.0

OUTCOMES = {
    "finished": Settlement.finished(b"1"),
    "failed": Settlement.failed("boom", "failed by the model"),
    "retry": Settlement.retry("boom", "", 0.0),
}
"""How the machine's runs end."""


class ModelWorker(Worker):
    """A worker whose runs and hand-offs wait for the state machine."""

    def __init__(self, settings: WorkerSettings, tasks: dict[str, Any]) -> None:
        super().__init__(settings, tasks)
        self.runs: list[Delivery] = []
        """Runs started and not ended: each goes on until the machine ends it."""
        self.pending: list[tuple[QueueKeys, list[str]]] = []
        """Hand-offs asked for by an ack, not run yet."""

    def _start(self, d: Delivery) -> None:
        self.runs.append(d)

    def _to_lane(self, d: Delivery) -> None:
        self._start(d)  # a sync job starts at once, as any other: the machine runs it

    def _start_hand_off(self, queue: QueueKeys, ids: list[str]) -> None:
        self.pending.append((queue, ids))

    def _stop_lost(self, d: Delivery) -> None:
        super()._stop_lost(d)  # the real worker cancels the run's task: here, the run ends
        if d in self.runs:
            self.stop_run(d)

    def stop_run(self, d: Delivery) -> None:
        """The run's code returned (or was stopped): its slot is free."""
        self.runs.remove(d)
        if d.reserved:
            d.reserved = False
            self.executor.unreserve()


class Fleet:
    """Two real workers of every queue, stepped on one event loop."""

    def __init__(self, url: str, queues: list[str], partitions: dict[str, int], tasks: Any):
        self.loop = asyncio.new_event_loop()
        self.workers: dict[str, ModelWorker] = {}
        for name in ("w1", "w2"):
            settings = WorkerSettings(
                tasks_module="model",
                queues=queues,
                concurrency=2,
                prefetch_ms=0,
                partitions=partitions,
                redis_url=url,
                lease_seconds=LEASE_SECONDS,
                handle_signals=False,
                worker_id=name,
            )
            self.workers[name] = ModelWorker(settings, dict(tasks))

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def fetch(self, name: str, woken: bool = False) -> list[Delivery]:
        """One pass of the worker's loop: its acks and a fetch for its free slots; ``woken``:
        the hot wait's fetch instead where the worker would make one (wakefetch.py), sent
        behind a BLPOP on the wake list (a token left by an enqueue, or its 50 ms run out)."""
        w = self.workers[name]
        before = list(w.runs)
        if woken:
            w._warm()  # the hot window is a matter of time: here, every woken fetch is in it
        if woken and w._hot_seconds(-1):
            self.run(self._hot(w))
        else:
            self.run(w._round_trip(fetch=True))
        return [d for d in w.runs if d not in before]

    async def _hot(self, w: ModelWorker) -> None:
        w._arm_hot(0.05)
        await w._end_hot()  # its reply read and taken in, as the loop's own wait does

    def end_run(self, name: str, d: Delivery, settlement: Settlement, hot: bool = False) -> bool:
        """The run returns ``settlement``; the worker's next pass sends it. ``hot``: it ends
        while the worker's hot wait is blocked where the worker would have one (written
        while the run was in flight, its fetch runs after the pass), and the worker then
        idles as its loop does (``_write_busy``). Returns whether it did."""
        w = self.workers[name]
        w.stop_run(d)
        if hot and not d.settled:
            w._warm()  # the run was leased within the window
            hot = bool(w._hot_seconds(-1))
        if hot:
            self.run(self._end_in_hot(w, d, settlement))
            return True
        if not d.settled:
            w._settle(d, settlement)
        self.run(w._round_trip(fetch=False))
        return False

    async def _end_in_hot(self, w: ModelWorker, d: Delivery, settlement: Settlement) -> None:
        w._arm_hot(0.05)
        w._settle(d, settlement)
        await w._round_trip(fetch=False)
        await w._end_hot()
        await w._write_busy()

    def heartbeat(self, name: str) -> list[Delivery]:
        """The worker's heartbeat; returns the runs it stopped as aborted."""
        w = self.workers[name]
        self.run(w._heartbeat())
        stopped = [d for d in w.runs if d.aborted]
        for d in stopped:
            w.stop_run(d)
        return stopped

    def hand_off(self, name: str) -> None:
        """Run the hand-offs the worker's acks asked for, as its background task would."""
        w = self.workers[name]
        pending, w.pending = w.pending, []
        for queue, ids in pending:
            self.run(w._hand_off(queue, ids))

    def sweep(self, name: str) -> None:
        """The hand-off sweep of the worker's heartbeat loop."""
        w = self.workers[name]
        self.run(handoff.sweep(w._redis, w.queues, w._defaults_for, w._route))

    def die(self, name: str) -> list[Delivery]:
        """The worker's process is killed: its runs and pending hand-offs are gone."""
        w = self.workers[name]
        gone, w.runs, w.pending = w.runs, [], []
        w.inflight.clear()
        w._running = 0
        w._acks = []
        return gone

    def close(self) -> None:
        for w in self.workers.values():
            self.run(w._redis.aclose())
            w.executor.shutdown()
        self.loop.close()


PARTITIONS = {"pq": 2}
RATE = "1/h"


def make_app(url: str) -> tuple[kubeq.App, dict[str, Any]]:
    app = kubeq.App(url, partitions=PARTITIONS)

    @app.task(queue="q", name="model.plain")
    def plain(*args: Any) -> None: ...

    @app.task(queue="q", name="model.limited", concurrency_limit=1)
    def limited(*args: Any) -> None: ...

    @app.task(queue="q", name="model.rated", rate_limit=RATE)
    def rated(*args: Any) -> None: ...

    tasks: dict[str, Any] = {"plain": plain, "limited": limited, "rated": rated}
    tasks.update(flow_tasks(app))

    @app.task(queue="q", name="model.flow_batch", batch=BATCH)
    def batch(*args: Any) -> None: ...

    tasks["flow_batch"] = batch
    return app, tasks


BATCH = kubeq.Batch(max_size=3, max_wait=3600.0, key=lambda item: item[0])
"""The model's batch task: up to 3 items ([key, n]) per batch and key, or the wait. The
windows are long so that only the machine's ``windows_pass`` step (flowmodel.py) makes them
pass: an example replays the same whatever the machine's speed."""


FLOW_MODES = {
    "debounce": {"debounce": 3600.0},
    "skip": {"singleton": "skip"},
    "replace": {"singleton": "replace"},
    "keep_latest": {"singleton": "keep_latest"},
    "cancel_running": {"singleton": "cancel_running"},
}
"""The model's debounced and singleton tasks (flowmodel.py): one per mode, keyed by their
first argument (the debounce window passes when the machine says: ``windows_pass``)."""


def flow_tasks(app: kubeq.App) -> dict[str, Any]:
    made = {}
    for mode, options in FLOW_MODES.items():
        key = "debounce_key" if mode == "debounce" else "singleton_key"

        def run(*args: Any) -> None: ...

        made[f"flow_{mode}"] = app.task(
            queue="q", name=f"model.flow_{mode}", **options, **{key: _first}
        )(run)
    return made


def _first(key: str, *args: Any) -> str:
    return key
