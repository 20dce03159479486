"""The version-pinning tasks of the redis-tier tests: registered as ``qtasks.<name>`` and
re-exported by ``qtasks``, whose worker processes run them (each worker with its own
``KUBEQ_VERSION``)."""

from __future__ import annotations

import os

from qapp import app, r

__all__ = ["pinned_flaky", "pinned_where", "spawn_pinned", "where"]


def _where() -> list[str]:
    return [os.environ.get("KUBEQ_VERSION", ""), str(os.getpid())]


@app.task(max_attempts=1)
def where() -> list[str]:
    """The version and pid of the worker that ran it."""
    return _where()


@app.task(max_attempts=1, pin_version=True)
def pinned_where() -> list[str]:
    """``where``, pinned to the version of the process that enqueues it."""
    return _where()


@app.task(max_attempts=3, backoff_min=0.05, backoff_max=0.1, pin_version=True)
def pinned_flaky(tag: str, failures: int) -> list[str]:
    """Fails its first ``failures`` attempts (each recorded with where it ran), then
    returns where it ran."""
    r().rpush(f"test:pinned:{tag}", ":".join(_where()))
    if r().llen(f"test:pinned:{tag}") <= failures:
        raise ConnectionError("transient")
    return _where()


@app.task(max_attempts=1)
def spawn_pinned(queue: str) -> list[str]:
    """Enqueues ``pinned_where`` on ``queue`` from inside a job: the child's queue and id."""
    child = pinned_where.apply_async(queue=queue)
    return [child.queue, child.id]
