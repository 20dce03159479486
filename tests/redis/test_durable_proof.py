"""The proof of durable execution with real processes: a job of three steps, a sleep and a
wait for a signal, whose worker is SIGKILLed inside each step and between two steps, ends
with each step's side effect applied exactly once (the steps' functions are idempotent, as
docs/durable.md asks: a kill inside a step runs its function again) and the job finished."""

from __future__ import annotations

import signal

import durtasks
import pytest
import redis

import kubeq
from tests.redis import durable_workers
from tests.redis.durable_workers import DurableWorker, StartDurable
from tests.redis.helpers import wait_until

_fixture = pytest.fixture(name="start_durable")(durable_workers.start_durable)


def _count(r: redis.Redis, kind: str, name: str) -> int:
    return int(r.get(f"test:{kind}:x:{name}") or 0)


def _kill(w: DurableWorker) -> None:
    w.signal(signal.SIGKILL)
    w.wait()


def test_kills_inside_and_between_steps_apply_each_effect_once(
    app: kubeq.App, r: redis.Redis, start_durable: StartDurable
) -> None:
    job = app.queue().enqueue(durtasks.saga, "x")
    for name in ("charge", "between"):  # killed inside the step, then between two steps
        w = start_durable("--lease", "1")
        wait_until(lambda n=name: _count(r, "ran", n) >= 1, timeout=60, what=f"at {name}")
        _kill(w)
        r.set(f"test:gate:x:{name}", "1")
    w = start_durable("--lease", "1")
    wait_until(lambda: _count(r, "ran", "ship") >= 1, timeout=60, what="after the sleep")
    _kill(w)  # inside the step after the sleep
    r.set("test:gate:x:ship", "1")
    w = start_durable("--lease", "1")
    wait_until(lambda: job.info().waiting_for == "delivered:x", timeout=60, what="the wait")
    _kill(w)  # a worker dies while the job waits: nothing of the job is lost
    assert app.signal("delivered:x", {"at": "door"}) == 1
    w = start_durable("--lease", "1")
    wait_until(lambda: _count(r, "ran", "email") >= 1, timeout=60, what="inside email")
    _kill(w)
    r.set("test:gate:x:email", "1")
    start_durable("--lease", "1")
    assert job.result(timeout=90) == ["charge done", "ship done", {"at": "door"}, "email done"]
    for name in ("charge", "ship", "email"):
        assert _count(r, "eff", name) == 1, f"{name} applied {_count(r, 'eff', name)} times"
        assert _count(r, "ran", name) == 2  # killed inside it once: its function ran again
    # code between steps runs on every run: the first, after the kill there, after the sleep,
    # after the kill in ship, after the signal and after the kill in email
    assert _count(r, "ran", "between") == 6
    assert job.info().attempts == 1
