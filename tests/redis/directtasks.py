"""Sync tasks of tests/redis/test_direct_runs.py: each ends one way an attempt can end, so
that the test can compare a run straight in the thread lane with a run under a timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import kubeq
from kubeq import errors

app = kubeq.App()


@app.task(max_attempts=2, backoff_min=0.01, backoff_max=0.02)
def ends(how: str) -> Any:
    """Return or raise as ``how`` says, and say which job and attempt it ran as."""
    job = kubeq.current_job()
    assert job is not None
    if how == "value":
        return {"id": job.id, "attempt": job.attempt, "of": job.max_attempts}
    if how == "raises":
        raise ValueError(f"attempt {job.attempt} failed")
    if how == "not-json":
        return {1, 2}
    if how == "stop-iteration":
        raise StopIteration("inside")
    if how == "cancelled":
        raise asyncio.CancelledError
    if how == "retry":
        if job.attempt == 1:
            raise errors.Retry(0.01)
        return "second"
    if how == "exit":
        raise SystemExit(3)
    raise AssertionError(how)
