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
- ``depends_on`` keeps its rules: a parent must have run earlier in the block (else
  ``JobNotFound``, nothing run), a child of a parent that did not finish is cancelled (unless
  ``allow_failure``: ``JobCancelled`` from its ``result()``), and a chord's callback gets its
  members' results.

Not covered (use ``drain`` with a real Redis for these): delays, etas and priorities (jobs run
in call order at once), the timeout of a sync task (async tasks do time out), de-duplication
by ``job_id``, cancelling, ``on_success`` / ``on_failure`` callbacks and chain links, debounce
and singleton keys (each call runs as it comes). A batch task's item runs as a batch of one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from kubeq import serialization, tracing
from kubeq.client.context import JobContext
from kubeq.client.jobs import Job
from kubeq.errors import JobCancelled, JobFailed, JobNotFound
from kubeq.outcomes import Outcome, Settlement
from kubeq.store.jobfields import JobInfo, Status
from kubeq.store.keys import QueueKeys
from kubeq.store.wire import FetchedJob
from kubeq.worker.delivery import Delivery, run_attempt
from kubeq.worker.execution import Executor, JobTimeout
from kubeq.workflows import dependencies

if TYPE_CHECKING:
    from kubeq.client.app import App, Call, Task
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
        on_submit: Any = None,  # inline: no thread lane
        prepaid: bool = False,
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
        self.cancelled = False
        """It never ran: a parent it depends on did not finish (``settlement.reason``)."""

    def _value(self) -> str:
        v = self.settlement.value
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v

    def status(self) -> Status:
        if self.cancelled:
            return "cancelled"
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
        if self.cancelled:
            raise JobCancelled(f"job {self.id} was cancelled: {s.reason}")
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

    def run(self, plan: EnqueuePlan, calls: Sequence[Call] = ()) -> list[EagerJob]:
        """Run a plan's jobs from sync code (``calls``: the plan's calls, for their parents)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self._runner is None:
                self._runner = asyncio.Runner()
            return self._runner.run(self.arun(plan, calls))
        # a sync .delay() inside a coroutine: run on a private loop in a helper thread
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self.arun(plan, calls)).result()

    async def arun(self, plan: EnqueuePlan, calls: Sequence[Call] = ()) -> list[EagerJob]:
        """Run a plan's jobs on the running loop, one after another in call order. A call
        with ``depends_on`` names jobs run in this block (else JobNotFound, as the real
        client, with nothing run); one whose parent did not finish is cancelled, unless
        ``allow_failure``; a chord's callback gets its members' results first."""
        parents = [self._parents(c) if c.depends_on else [] for c in calls]
        jobs = []
        for i, ((queue, job_id), payload) in enumerate(
            zip(plan.targets, plan.payloads, strict=True)
        ):
            call = calls[i] if i < len(calls) else None
            job = self._blocked(call, parents[i] if call else [], queue, job_id, payload)
            if job is None:
                if call is not None and call.chord_of is not None:
                    payload = _with_results(payload, parents[i])  # noqa: PLW2901
                job = await self._one(QueueKeys.of(queue, plan.prefix), job_id, payload)
            self.jobs.append(job)
            jobs.append(job)
        return jobs

    def _parents(self, call: Call) -> list[EagerJob]:
        """The jobs of this block a call depends on, or JobNotFound naming the others."""
        ran = {(j.queue, j.id): j for j in self.jobs}
        edges = dependencies.parents_of(call, self.app.default_queue)
        missing = [f"{q}/{i}" for q, i in edges if (q, i) not in ran]
        if missing:
            raise JobNotFound(
                f"depends_on names jobs that do not exist (or expired): {', '.join(missing)}; "
                "nothing was enqueued (in eager mode, a parent must run in the same block)"
            )
        return [ran[e] for e in edges]

    def _blocked(
        self, call: Call | None, parents: list[EagerJob], queue: str, job_id: str, payload: bytes
    ) -> EagerJob | None:
        """The cancelled job of a call whose parent did not finish, or None: it runs."""
        if call is None or call.allow_failure:
            return None
        for parent in parents:
            if parent.status() != "finished":
                reason = (
                    f"its parent {parent.queue}/{parent.id} ended {parent.status()} "
                    "(allow_failure is off)"
                )
                settlement = Settlement(Outcome.FAILED, b"", "", reason)
                job = EagerJob(self.app, queue, job_id, payload, settlement, 0, call.task, [])
                job.cancelled = True
                return job
        return None

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


def _with_results(payload: bytes, members: list[EagerJob]) -> bytes:
    """A chord callback's payload with its members' results as the first argument (None for
    a member that did not finish: only with allow_failure), as a worker passes them."""
    body = serialization.loads(payload)
    results = [m.result() if m.status() == "finished" else None for m in members]
    body["args"] = [results, *body.get("args", [])]
    return serialization.dumps(body)


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
