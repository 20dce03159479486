"""The pure side of ``kubeq.current_job()``'s progress and meta: what is refused before any
Redis call (not JSON, over the size limit) and what a context without Redis keeps."""

from __future__ import annotations

import pickle

import pytest

from kubeq import JobContext, defaults


def _ctx() -> JobContext:
    return JobContext("j1", "tasks.t", "default", 1, 3)


def test_values_are_kept_in_memory_without_redis() -> None:
    ctx = _ctx()
    assert ctx.progress is None and ctx.meta == {}
    ctx.set_progress({"done": 3})
    ctx.update_meta(stage="a")
    ctx.update_meta(size=2)
    assert ctx.progress == {"done": 3}
    assert ctx.meta == {"stage": "a", "size": 2}
    ctx.meta["stage"] = "changed"  # a copy: only update_meta changes the meta
    assert ctx.meta["stage"] == "a"


def test_non_json_progress_is_refused_naming_the_field() -> None:
    ctx = _ctx()
    with pytest.raises(TypeError, match="the progress of job j1 must be JSON"):
        ctx.set_progress({1, 2})
    with pytest.raises(TypeError, match="the meta of job j1 must be JSON"):
        ctx.update_meta(when=object())
    assert ctx.progress is None and ctx.meta == {}


def test_oversized_values_are_refused_naming_the_limit() -> None:
    ctx = _ctx()
    with pytest.raises(ValueError, match="MAX_PROGRESS_BYTES"):
        ctx.set_progress("x" * defaults.MAX_PROGRESS_BYTES)
    with pytest.raises(ValueError, match="the meta of job j1 is"):
        ctx.update_meta(blob="x" * defaults.MAX_PROGRESS_BYTES)
    assert ctx.meta == {}
    ctx.set_progress("x" * (defaults.MAX_PROGRESS_BYTES - 2))  # quotes make it the limit
    assert ctx.progress is not None


def test_a_process_child_gets_the_connection_data_and_values() -> None:
    ctx = JobContext("j1", "t", "q", 2, 3, lease="41", redis_url="redis://x")
    ctx.update_meta(a=1)  # not connected yet (no base): kept in memory
    ctx.base = "kubeq:{q}:"
    copy = pickle.loads(pickle.dumps(ctx))
    got = (copy.lease, copy.base, copy.redis_url, copy.meta)
    assert got == ("41", "kubeq:{q}:", "redis://x", {"a": 1})
