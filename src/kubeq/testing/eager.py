"""Eager mode: ``.delay()`` runs the job inline, through the worker's own attempt code.

``with kubeq.testing.eager(app):`` makes every enqueue of ``app`` (sync or async) run each
job at once in the caller instead of sending it to Redis, with no Redis and no worker. What
a test learns this way holds in production because nothing is imitated:

- the call goes through ``enqueue.plan_enqueue`` (the same option checks, the same JSON
  encoding: a non-JSON argument raises ``SerializationError`` exactly as the real client does);
- the job is decoded from that JSON payload and run by ``delivery.run_attempt``, the function
  a worker runs for each attempt: only registered tasks run, per-call options apply, a non-JSON
  result fails, and failures go through ``retry.decide`` (retries happen at once instead of
  after their backoff; their delays are recorded);
- ``job.result()`` returns the decoded result or raises ``JobFailed`` with the reason a
  dead letter would carry.

Not covered (use ``drain`` with a real Redis for these): delays, etas and priorities (jobs run
in call order at once), the timeout of a sync task (async tasks do time out), de-duplication
by ``job_id``, cancelling.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from kubeq import serialization, tracing
from kubeq.client.context import JobContext
from kubeq.client.jobs import Job
from kubeq.errors import JobFailed
from kubeq.outcomes import Outcome, Settlement
from kubeq.store.jobfields import JobInfo, Status
from kubeq.store.keys import QueueKeys
from kubeq.store.wire import FetchedJob
from kubeq.worker.delivery import Delivery, run_attempt
from kubeq.worker.execution import Executor, JobTimeout

if TYPE_CHECKING:
    from kubeq.client.app import App, Task
    from kubeq.client.enqueue import EnqueuePlan


class _Inline:
    """The executor of eager mode: tasks run in the caller (async ones on its loop)."""

    tasks_module = "(eager mode: the App's registry)"

    async def invoke(
        self,
        task: Task[Any, Any],
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: Any,
        ctx: JobContext | None = None,
        soft_timeout: float | None = None,
        on_abandon: Any = None,  # inline: no thread ever runs on
    ) -> Any:
        if ctx is not None:  # current_job() answers as in a worker (soft timeout: at check())
            ctx.start_clock(timeout, soft_timeout)
        if not task.is_async:
            return task.func(*args, **kwargs)
        try:
            return await asyncio.wait_for(task.func(*args, **kwargs), timeout)
        except TimeoutError:
            raise JobTimeout(f"ran longer than its timeout of {timeout} s") from None


class EagerJob(Job):
    """The handle of a job that already ran: its reads answer from memory."""

    def __init__(
        self,
        app: App,
        queue: str,
        job_id: str,
        payload: bytes,
        settlement: Settlement,
        attempts: int,
        task: str,
        retry_delays: list[float],
    ) -> None:
        super().__init__(app, queue, job_id)
        self.payload = payload
        self.settlement = settlement
        self.attempts = attempts
        self.task = task
        self.retry_delays = retry_delays
        """Seconds each retry would have waited in a real worker."""

    def _value(self) -> str:
        v = self.settlement.value
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v

    def status(self) -> Status:
        return "finished" if self.settlement.outcome is Outcome.FINISHED else "failed"

    async def astatus(self) -> Status:
        return self.status()

    def info(self) -> JobInfo:
        s, done = self.settlement, self.status() == "finished"
        return JobInfo(
            id=self.id,
            queue=self.queue,
            status=self.status(),
            task=self.task,
            payload=self.payload.decode(),
            priority=0,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            attempts=self.attempts,
            deliveries=self.attempts,
            worker="eager",
            error="" if done else self._value(),
            reason=s.reason,
            traceback=s.traceback,
            result=self._value() if done else "",
        )

    async def ainfo(self) -> JobInfo:
        return self.info()

    def result(self, timeout: float | None = None) -> Any:
        """The result, or JobFailed as a real job's ``result()`` would raise it."""
        s = self.settlement
        if s.outcome is Outcome.FINISHED:
            return serialization.loads(s.value or b"null")
        raise JobFailed(self.id, s.reason, self._value(), s.traceback)

    async def aresult(self, timeout: float | None = None) -> Any:
        return self.result(timeout)

    def cancel(self) -> bool:
        return False  # it has run already, as a running or ended job refuses cancel

    async def acancel(self) -> bool:
        return False


class EagerRunner:
    """Installed as ``app.eager`` by ``eager(app)``; ``App.enqueue_many`` hands it the plan."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.jobs: list[EagerJob] = []
        """Every job run in this eager block, in order."""
        self._executor = cast(Executor, _Inline())
        self._runner: asyncio.Runner | None = None

    def run(self, plan: EnqueuePlan) -> list[EagerJob]:
        """Run a plan's jobs from sync code."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self._runner is None:
                self._runner = asyncio.Runner()
            return self._runner.run(self.arun(plan))
        # a sync .delay() inside a coroutine: run on a private loop in a helper thread
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self.arun(plan)).result()

    async def arun(self, plan: EnqueuePlan) -> list[EagerJob]:
        """Run a plan's jobs on the running loop, one after another in call order."""
        jobs = []
        for (queue, job_id), payload in zip(plan.targets, plan.payloads, strict=True):
            job = await self._one(QueueKeys.of(queue, plan.prefix), job_id, payload)
            self.jobs.append(job)
            jobs.append(job)
        return jobs

    async def _one(self, queue: QueueKeys, job_id: str, payload: bytes) -> EagerJob:
        attempts, delays = 0, list[float]()
        while True:
            d = Delivery(FetchedJob(queue, job_id, "eager", payload, attempts, 0, attempts + 1))
            settlement = await tracing.traced(d, run_attempt(d, self.app.tasks, self._executor))
            attempts += 1
            if settlement.outcome is not Outcome.RETRY:
                return EagerJob(
                    self.app, queue.name, job_id, payload, settlement, attempts, d.task_name, delays
                )
            delays.append(settlement.retry_delay_ms / 1000)

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None


@contextmanager
def eager(app: App) -> Iterator[EagerRunner]:
    """Run every job enqueued on ``app`` inline while the block lasts (see the module doc)."""
    runner, previous = EagerRunner(app), app.eager
    app.eager = runner
    try:
        yield runner
    finally:
        app.eager = previous
        runner.close()
