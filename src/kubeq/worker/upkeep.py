"""What a worker does beside its fetch-run-acknowledge loop: the heartbeat (lease renewals,
aborted jobs, the published worker document, the callback sweep), the hand-off of ended jobs'
callbacks, and the drain on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.exceptions import RedisError, ResponseError

from kubeq.outcomes import Ended, Outcome, Settlement
from kubeq.store import cluster as rediscluster
from kubeq.store.keys import QueueKeys
from kubeq.worker import handoff, idle, info, leases
from kubeq.worker.delivery import Delivery
from kubeq.worker.state import HANDBACK_SECONDS, REDIS_DOWN, WorkerState

log = logging.getLogger("kubeq.worker")


class Upkeep(WorkerState):
    """The heartbeat, the hand-off and the drain of a worker (``Worker`` runs them)."""

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
        """Every heartbeat_interval: renew leases, publish the worker document, sweep the
        hand-offs; a worker that holds no job publishes and sweeps only every
        ``idle.IDLE_PUBLISH_SECONDS`` and ``idle.IDLE_SWEEP_SECONDS``. Each step catches and
        logs its own failure, so one bad item in Redis never stops the others nor the next
        beat (handoff.py sets such items aside)."""
        failing = False
        started_at = time.time()
        publish_at = sweep_at = 0.0  # idle: every IDLE_PUBLISH/SWEEP_SECONDS (idle.py)
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            held = bool(self.inflight)  # nothing held: no lease to renew, no Redis call
            try:
                await self._heartbeat()
            except REDIS_DOWN as exc:
                if not failing:
                    log.warning("heartbeat failed (leases are not being renewed): %s", exc)
                failing = True
                if not isinstance(exc, ResponseError) or rediscluster.is_outage(exc):
                    continue  # Redis out of reach: the next beat tries again
                # Redis answered and refused (a queue's keys hold garbage): a restart cannot
                # fix data, so this counts as a beat for /healthz, and the sweep still runs
                self.vitals.beat()
            except Exception as exc:  # a bug of ours: the next beat tries again
                self._complain("heartbeat", exc)
            else:
                self._recovered("heartbeat")
                if failing:
                    log.info("heartbeat restored")
                failing = False
                if held:
                    self.vitals.round_trip()
                self.vitals.beat()
            now = time.monotonic()
            if held or now >= publish_at:
                publish_at = now + idle.IDLE_PUBLISH_SECONDS
                await self._publish(started_at)
            if held or now >= sweep_at:
                sweep_at = now + idle.IDLE_SWEEP_SECONDS
                await self._sweep()

    async def _publish(self, started_at: float) -> None:
        try:  # the dashboard's Workers page; logs Redis errors itself
            await info.publish_worker(
                self._redis, self.settings, self.inflight.values(), self.metrics, started_at
            )
        except Exception as exc:
            self._complain("publishing the worker document", exc)

    async def _sweep(self) -> None:
        try:  # callbacks a dead worker acked but never handed off
            await handoff.sweep(self._redis, self.queues, self._defaults_for, self._route)
        except (RedisError, OSError) as exc:
            log.warning("callback sweep failed: %s", exc)
        except Exception as exc:
            self._complain("callback sweep", exc)
        else:
            self._recovered("callback sweep")

    async def _heartbeat(self) -> None:
        self._hand_back(self._prefetch.stale())  # slots busy with long jobs: let others run these
        if not self.inflight:
            return  # an idle worker's presence is its idle beat's (idle.py)
        aborted = await leases.renew(
            self._redis, self._scripts.heartbeat, self.queues, self.settings, self.inflight
        )
        for d in aborted:
            self._abort(d)

    def _abort(self, d: Delivery) -> None:
        """The job was aborted (abort.lua recorded its end): stop the attempt. An async task
        is cancelled, a process child killed; a thread task sees current_job().aborted and
        its thread is counted as abandoned until it returns."""
        log.warning("job %s (%s): aborted; stopping its attempt", d.id, d.task_name)
        d.aborted = True
        d.settled = True
        self.inflight.pop(d.key, None)
        if d.context is not None:
            d.context.abort()
        if d.runner is not None:
            d.runner.cancel()
        self._count(d, Ended.ABORTED.value)
        self._activity.set()

    async def _drain(self) -> None:
        """Finish running jobs within drain_timeout, hand back the rest, flush every ack."""
        deadline = time.monotonic() + self.settings.drain_timeout
        self._hand_back(self._prefetch.drop_all())  # never started: back to the queue at once
        force = asyncio.create_task(self._force.wait())
        while self.inflight and not self._force.is_set():
            runners = {
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
