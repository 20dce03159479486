"""Helpers to test code that uses kubeq, without a cluster.

- ``eager(app)``: ``.delay()`` runs the job inline, through the same JSON round trip, retry
  policy and error types as a worker (``kubeq.testing.eager``);
- ``drain(app, queues)`` / ``adrain``: a real worker in this process until the queues are
  empty (``kubeq worker --burst`` from the command line);
- the pytest plugin (installed with kubeq): the ``kubeq_redis`` and ``kubeq_worker`` fixtures;
- ``RedisServer``: a throwaway redis-server on a free port.
"""

from kubeq.testing.drain import DrainReport, adrain, drain
from kubeq.testing.eager import EagerJob, EagerRunner, eager
from kubeq.testing.server import RedisServer, free_port

__all__ = [
    "DrainReport",
    "EagerJob",
    "EagerRunner",
    "RedisServer",
    "adrain",
    "drain",
    "eager",
    "free_port",
]
