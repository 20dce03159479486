"""What a worker does beside its fetch-run-acknowledge loop: the heartbeat (lease renewals,
aborted jobs, the published worker document, its turn at the callback sweep), the hand-off
of ended jobs' callbacks, and the drain on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from redis.exceptions import RedisError, ResponseError

from kubeq.cancelling import cancel_until_done
from kubeq.outcomes import Ended, Outcome, Settlement
from kubeq.store import cluster as rediscluster
from kubeq.store import versions
from kubeq.store.keys import QueueKeys
from kubeq.worker import handoff, info, leases, memtrim, sweeps
from kubeq.worker.delivery import Delivery
from kubeq.worker.state import HANDBACK_SECONDS, REDIS_DOWN, WorkerState

log = logging.getLogger("kubeq.worker")

RENEWALS_IN_FLIGHT = 8
"""Lease renewals sent and not yet answered, at most (slow replies: see ``_renew_loop``)."""
STOP_BACKGROUND_SECONDS = 5.0
"""How long a stopping worker waits for its background loops to end (``_stop_background``)."""


class Upkeep(WorkerState):
    """The heartbeat, the hand-off and the drain of a worker (``Worker`` runs them)."""

    _busy_stale = False
    """Whether the busy count Redis holds for this worker may be wrong (a hot wait's fetch
    ran after jobs ended, wakefetch.py): the next heartbeat writes it even when idle."""

    def _start_hand_off(self, queue: QueueKeys, ids: list[str]) -> None:
        """Enqueue the callbacks of jobs just ended, beside the loop (handoff.py)."""
        runner = asyncio.create_task(self._hand_off(queue, ids), name="kubeq-handoff")
        self._handoffs.add(runner)
        runner.add_done_callback(self._handoffs.discard)

    async def _hand_off(self, queue: QueueKeys, ids: list[str]) -> None:
        try:
            await handoff.hand_off(self._redis, queue, ids, self._defaults_for, self._route)
        except (RedisError, OSError) as exc:
            log.warning("callbacks of %s not handed off yet (a later sweep will): %s", ids, exc)
        except Exception:  # a bug of ours: the entries stay, and the sweep retries them
            log.exception("callbacks of %s not handed off yet (a later sweep will)", ids)

    async def _heartbeat_loop(self) -> None:
        """Every heartbeat_interval, beside the lease renewals (``_renew_loop``): publish the
        worker document if it changed (info.Publisher); every ``sweeps.SWEEP_SECONDS``, offer to
        sweep the queues' unfinished hand-offs, sweeping those this worker won (sweeps.py: one
        worker at a time per queue); once per idle spell, hand the freed heap back to the
        system (memtrim.py). Each step catches and logs its own failure, so one bad item in
        Redis never stops the others nor the next beat (handoff.py sets such items aside)."""
        publisher = info.Publisher(self.settings, time.time())
        claims = sweeps.SweepClaims(self.settings.worker_id)
        trim = memtrim.IdleTrim()
        sweep_at = 0.0
        renewals = self._start_background("leases", self._renew_loop())
        try:
            while True:
                await asyncio.sleep(self.settings.heartbeat_interval)
                await publisher.beat(self._redis, self.inflight.values(), self.settled, self._round)
                if self.settings.version:
                    await self._check_retired(self.settings.version)
                trim.beat(len(self.inflight), self.settled.values())
                now = time.monotonic()
                if now >= sweep_at:
                    sweep_at = now + sweeps.SWEEP_SECONDS
                    await self._sweep(claims)
        finally:
            renewals.cancel()

    async def _check_retired(self, version: str) -> None:
        """Read whether this worker's version is retired (store/versions.py)."""
        try:
            first = QueueKeys.of(self.settings.queues[0], self.settings.prefix)
            retired = await versions.is_retired(self._redis, first, version)
        except (RedisError, OSError) as exc:
            log.warning("could not read whether version %s is retired: %s", version, exc)
            return
        self.vitals.round_trip()  # a retired worker fetches nothing: this is its round trip
        if retired != self._retired:
            log.info(
                "version %s %s",
                version,
                "retired: fetching only the jobs pinned to it" if retired else "current",
            )
            self._retired = retired
            self._router.use(self._pinned if retired else self.queues)
            self._activity.set()

    async def _sweep(self, claims: sweeps.SweepClaims) -> None:
        try:  # callbacks a dead worker acked but never handed off
            won = await claims.claim(self._redis, self.queues)
            if won:
                await handoff.sweep(self._redis, won, self._defaults_for, self._route)
        except (RedisError, OSError) as exc:
            log.warning("callback sweep failed: %s", exc)
        except Exception as exc:
            self._complain("callback sweep", exc)
        else:
            self._recovered("callback sweep")

    async def _renew_loop(self) -> None:
        """Every heartbeat_interval, renew the leases. A renewal does not wait for the reply
        to the one before (up to ``RENEWALS_IN_FLIGHT`` at once), so replies slower than the
        lease do not hold back the renewals that reach Redis in time."""
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                await asyncio.sleep(self.settings.heartbeat_interval)
                if len(pending) < RENEWALS_IN_FLIGHT:
                    renewal = asyncio.create_task(self._renew_once(), name="kubeq-renewal")
                    pending.add(renewal)
                    renewal.add_done_callback(pending.discard)
        finally:
            for renewal in pending:
                renewal.cancel()

    async def _renew_once(self) -> None:
        try:
            renewed = await self._heartbeat()
        except REDIS_DOWN as exc:
            if not self._renewals_failing:
                log.warning("heartbeat failed (leases are not being renewed): %s", exc)
            self._renewals_failing = True
            if not isinstance(exc, ResponseError) or rediscluster.is_outage(exc):
                return  # Redis out of reach: the next beat tries again
            # Redis answered and refused (a queue's keys hold garbage): a restart cannot
            # fix data, so this counts as a beat for /healthz
            self.vitals.beat()
        except Exception as exc:  # a bug of ours: the next beat tries again
            self._complain("heartbeat", exc)
        else:
            self._recovered("heartbeat")
            if self._renewals_failing:
                log.info("heartbeat restored")
            self._renewals_failing = False
            if renewed:
                self.vitals.round_trip()
            self.vitals.beat()

    def _held(self) -> list[Delivery]:
        """What runs or waits here, and what ended with its outcome not recorded yet (a slow
        round trip must not let those lapse: another worker would run them again)."""
        held = [d for d in self.inflight.values() if not d.settled]
        held += [d for d, _ in (*self._acks, *self._sending) if not d.handed_back]
        return held

    async def _heartbeat(self) -> bool:
        """Renew what this worker holds; whether that took a round trip to Redis."""
        self._hand_back(self._stale())  # slots busy with long jobs: let others run these
        held = self._held()
        if not held and self._answered >= self._fetch_seq and not self._busy_stale:
            return False  # nothing held, no fetch reply in transit: the idle beat's (idle.py)
        stale, self._busy_stale = self._busy_stale, False  # the busy count is written here
        try:
            aborted, lost = await leases.renew(
                self._redis,
                self._scripts.heartbeat,
                self.queues,
                self.settings,
                held,
                len(self.inflight),
                # the transit log holds jobs to renew only while a fetch's reply is unread
                self._answered if self._answered < self._fetch_seq else -1,
            )
        except BaseException:
            self._busy_stale = self._busy_stale or stale  # not written: the next beat does
            raise
        for d in aborted:
            self._abort(d)
        for d in lost:
            self._stop_lost(d)
        return True

    def _abort(self, d: Delivery) -> None:
        """The job was aborted (abort.lua recorded its end): stop the attempt. An async task
        is cancelled, a process child killed; a thread task sees current_job().aborted and
        runs on until it returns. The delivery stays held (its lease renewed, its
        concurrency slot taken) until the attempt has stopped; then its ack tells ack.lua
        so (``_execute``), which frees the slot."""
        if d.aborted:
            return
        log.warning("job %s (%s): aborted; stopping its attempt", d.id, d.task_name)
        d.aborted = True
        if d.context is not None:
            d.context.abort()
        self._count(d, Ended.ABORTED.value)
        if d.runner is None or self._withdraw(d):  # waiting for a slot: stopped already
            self._settle(d, Settlement(Outcome.REQUEUE), count=False)
        if d.runner is not None:
            d.runner.cancel()

    def _stop_lost(self, d: Delivery) -> None:
        """This worker no longer holds the job (delivered again elsewhere, or ended): stop
        the run, whose outcome would be refused. It is forgotten here at once: the lease is
        someone else's (a thread task that runs on is told by current_job().aborted)."""
        d.settled = True
        self.inflight.pop(d.key, None)
        if d.context is not None:
            d.context.abort()
        if d.runner is not None:
            d.runner.cancel()
        self._activity.set()

    async def _stop_background(self) -> None:
        """Stop the loops beside the fetch loop (the heartbeat, the lease renewals) and wait
        until they have ended. A loop still running after its cancellation is cancelled
        again: redis-py's asyncio client can swallow one (a command cancelled while its
        connection is being made returns as if nothing happened), and the loop would go on
        for ever, its worker never exiting. Bounded by ``STOP_BACKGROUND_SECONDS``."""
        left = await cancel_until_done(
            self._background.values(), recheck=0.05, bound=STOP_BACKGROUND_SECONDS
        )
        if left:
            names = ", ".join(task.get_name() for task in left)
            log.warning("%s still running at exit: not waited for", names)

    async def _drain(self) -> None:
        """Finish running jobs within drain_timeout, hand back the rest, flush every ack."""
        deadline = time.monotonic() + self.settings.drain_timeout
        # never started: back to the queue at once
        self._hand_back(self._prefetch.drop_all() + self._withdraw_queued())
        force = asyncio.create_task(self._force.wait())
        while self.inflight and not self._force.is_set():
            runners: set[asyncio.Future[Any]] = {
                d.runner
                for d in self.inflight.values()
                if d.runner is not None and not d.runner.done()
            }
            left = deadline - time.monotonic()
            if left <= 0 or not runners:
                break
            await asyncio.wait({*runners, force}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            await self._flush()
        force.cancel()
        leftover = [d for d in self.inflight.values() if not d.settled]
        if leftover:
            log.warning("handing back %d unfinished jobs to their queues", len(leftover))
        for d in leftover:
            d.handed_back = True
            if d.runner is not None:
                d.runner.cancel()
            self._settle(d, Settlement(Outcome.REQUEUE))
        # The hand-back gets HANDBACK_SECONDS in all (the pod's grace period is the drain
        # timeout plus a margin), and a second signal cuts it short.
        give_up = time.monotonic() + HANDBACK_SECONDS
        tries = 0
        while self._acks and time.monotonic() < give_up and not (tries and self._force.is_set()):
            tries += 1
            try:
                async with asyncio.timeout(max(0.1, give_up - time.monotonic())):
                    await self._round_trip(fetch=False)
            except (*REDIS_DOWN, TimeoutError) as exc:
                log.error("could not hand back jobs (%s); retrying", exc or "timed out")
                await self._wait_activity(0.5)
        if self._acks:
            log.error(
                "%d outcomes not recorded: those jobs run again when their lease expires",
                len(self._acks),
            )

    async def _flush(self) -> None:
        with contextlib.suppress(*REDIS_DOWN):
            await self._round_trip(fetch=False)
