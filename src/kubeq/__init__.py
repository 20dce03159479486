"""kubeq: a Redis task queue whose workers run on Kubernetes and scale themselves.

    app = kubeq.App()                      # KUBEQ_REDIS_URL, else redis://localhost:6379/0

    @app.task(max_attempts=5)
    def add(x: int, y: int) -> int:
        return x + y

    job = add.delay(4, 4)                  # Celery style
    job = app.queue("default").enqueue(add, 4, 4)   # RQ style
    job.result(timeout=10)                 # -> 8

Run workers with ``kubeq worker tasks_module --queue default --concurrency 8``.
"""

from kubeq.client.app import App, Call, Task, TaskOptions
from kubeq.client.canvas import (
    Chain,
    ChainResult,
    Chord,
    ChordResult,
    Group,
    GroupResult,
    chain,
    chord,
    group,
)
from kubeq.client.context import JobContext, current_job
from kubeq.client.durable import asleep, astep, await_for, sleep, step, wait_for
from kubeq.client.jobs import Job
from kubeq.client.queues import Queue
from kubeq.errors import (
    JobAborted,
    JobCancelled,
    JobExpired,
    JobFailed,
    JobNotFound,
    JobSuspended,
    KubeqError,
    LeaseLost,
    NotReplicated,
    ResultTimeout,
    Retry,
    SerializationError,
    SoftTimeLimitExceeded,
    StepTooLarge,
    WaitTimeout,
)
from kubeq.patterns import Batch
from kubeq.retry import RetryPolicy
from kubeq.store.jobfields import JobInfo
from kubeq.store.stats import QueueStats, read_stats

__version__ = "0.1.0"

__all__ = [
    "App",
    "Batch",
    "Call",
    "Chain",
    "ChainResult",
    "Chord",
    "ChordResult",
    "Group",
    "GroupResult",
    "Job",
    "JobAborted",
    "JobCancelled",
    "JobContext",
    "JobExpired",
    "JobFailed",
    "JobInfo",
    "JobNotFound",
    "JobSuspended",
    "KubeqError",
    "LeaseLost",
    "NotReplicated",
    "Queue",
    "QueueStats",
    "ResultTimeout",
    "Retry",
    "RetryPolicy",
    "SerializationError",
    "SoftTimeLimitExceeded",
    "StepTooLarge",
    "Task",
    "TaskOptions",
    "WaitTimeout",
    "__version__",
    "asleep",
    "astep",
    "await_for",
    "chain",
    "chord",
    "current_job",
    "group",
    "read_stats",
    "sleep",
    "step",
    "wait_for",
]
