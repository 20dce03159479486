"""Pinning at enqueue: the queue of a job that must run on one worker version.

A call is pinned by ``.set(version="3f2a9c1e")``, or by ``pin_version=True`` (on the call or
on ``@app.task``) to the version of the process that enqueues it: ``KUBEQ_VERSION``, which a
versioned rollout sets in every worker pod (a child, callback or retry enqueued by a job runs
on the version its parent ran on) and which a service pod may set too. Its job goes to the
version's queue ``<queue>~<version>`` (``kubeq.store.versions.pinned_queue``), which only that
version's workers consume. A pinned call made where no version is set is refused with
:class:`NoWorkerVersion` before anything is sent.
"""

from __future__ import annotations

import os

from kubeq.errors import KubeqError
from kubeq.options import Call, TaskOptions
from kubeq.store.versions import VERSION_ENV, check_version, pinned_queue


class NoWorkerVersion(KubeqError, ValueError):
    """A call asks to be pinned to its enqueuer's version, and the enqueuer has none."""


def version_of(call: Call, options: TaskOptions) -> str | None:
    """The version ``call`` is pinned to (None: it is not pinned)."""
    if call.version is not None:
        return check_version(call.version)
    if call.pin_version is False or not (call.pin_version or options.pin_version):
        return None
    version = os.environ.get(VERSION_ENV)
    if not version:
        where = "the call's pin_version=True" if call.pin_version else "pin_version=True"
        raise NoWorkerVersion(
            f"task {call.task!r} has {where}, but this process has no worker version: "
            f"{VERSION_ENV} is not set (a versioned rollout sets it in worker pods). Set "
            f"{VERSION_ENV} to the version this process runs, give .set(version=...) or "
            "enqueue with pin_version=False"
        )
    return check_version(version, VERSION_ENV)


def place(queue: str, call: Call, options: TaskOptions) -> str:
    """The queue that takes ``call`` (``queue`` itself unless it is pinned)."""
    version = version_of(call, options)
    return queue if version is None else pinned_queue(queue, version)
