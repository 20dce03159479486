"""Names the operator derives from a TaskQueue's name, kept within Kubernetes' limits.

A TaskQueue's ``metadata.name`` may be up to 253 characters (a DNS subdomain), but it is
used as a label value (at most 63 characters) on the worker Deployment and its pods, and the
Deployment's name must leave room for the ReplicaSet and pod names Kubernetes derives from it.
A name that fits is used as it is, so every existing TaskQueue keeps its names; a longer one
is cut and given a hash of the whole name (``<first characters>-<8 hex>``), so two long names
that share a beginning still get distinct, stable names.
"""

from __future__ import annotations

import hashlib

LABEL_VALUE_MAX = 63
"""Kubernetes' limit on a label value."""
WORKER_SUFFIX = "-worker"
DEPLOYMENT_NAME_MAX = LABEL_VALUE_MAX + len(WORKER_SUFFIX)
"""The longest worker Deployment name: that of a 63-character TaskQueue, as always."""
HASH_CHARS = 8


def _shorten(name: str, limit: int) -> str:
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_CHARS]
    # a cut that ends in '-' or '.' would leave '-.' or '.-' (not a valid DNS name)
    head = name[: limit - HASH_CHARS - 1].rstrip("-.")
    return f"{head}-{digest}"


def taskqueue_label(taskqueue: str) -> str:
    """The value of the ``kubeq.dev/taskqueue`` label: the name, or a hashed cut of it."""
    return _shorten(taskqueue, LABEL_VALUE_MAX)


def deployment_name(taskqueue: str) -> str:
    """The worker Deployment's name: ``<name>-worker``, from the label value when shortened."""
    return f"{taskqueue_label(taskqueue)}{WORKER_SUFFIX}"


POOL_SUFFIX = "-pool"
"""The end of a worker pool's Deployment name: never ``-worker``, so a pool's Deployment
cannot take the name of a TaskQueue's own."""


def pool_deployment_name(taskqueue: str, pool: str) -> str:
    """A worker pool's Deployment: ``<name>-<pool>-pool`` (cut and hashed when long)."""
    return f"{_shorten(f'{taskqueue}-{pool}', LABEL_VALUE_MAX)}{POOL_SUFFIX}"


JOB_PREFIX_MAX = 45
"""A Job's name is a label value on its pods (at most 63): the prefix leaves room for the
slot and number (``jobpods.job_names``: up to 5 + 1 + 10 characters)."""


def pool_job_prefix(taskqueue: str, pool: str) -> str:
    """The start of a Job-mode pool's Job names: ``<name>-<pool>-job-``."""
    return f"{_shorten(f'{taskqueue}-{pool}', JOB_PREFIX_MAX - len('-job-'))}-job-"
