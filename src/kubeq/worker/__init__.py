"""The worker runtime: the loop that fetches, runs and acknowledges jobs (``Worker``), its
settings, the executors, the heartbeat and the idle wait. ``kubeq worker`` starts it."""

from kubeq.worker.loop import Worker
from kubeq.worker.settings import WorkerSettings

__all__ = ["Worker", "WorkerSettings"]
