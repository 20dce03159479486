"""Tasks of the durable tests (tests/redis/test_durable*.py), run by real worker processes
started as `kubeq worker durtasks`. Side effects are counted in Redis keys outside the job
(``test:eff:<tag>:<step>``), so a test sees how often each step really ran."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import redis

import kubeq
from kubeq.store import connections

app = kubeq.App()
_r: redis.Redis | None = None


def r() -> redis.Redis:
    global _r
    if _r is None:
        _r = connections.sync_client(os.environ["KUBEQ_REDIS_URL"])
    return _r


def effect(tag: str, name: str) -> int:
    """A side effect: counts itself, returns how many times it has run."""
    return int(r().incr(f"test:eff:{tag}:{name}"))


def gated(tag: str, name: str) -> int:
    """A side effect that blocks until the test opens ``test:gate:<tag>``."""
    n = effect(tag, name)
    while not r().exists(f"test:gate:{tag}"):
        time.sleep(0.05)
    return n


@app.task(max_attempts=3, backoff_min=0.1, backoff_max=0.2)
def three_steps(tag: str) -> list[Any]:
    """Three steps; the second blocks on a gate (the test kills the worker there); after it,
    the first run to get there fails once, so a retry runs on the recorded steps."""
    one = kubeq.step("one", effect, tag, "one")
    two = kubeq.step("two", gated, tag, "two")
    if r().set(f"test:failed:{tag}", "1", nx=True):
        raise RuntimeError("fails once after step two")
    three = kubeq.step("three", effect, tag, "three")
    return [one, two, three]


@app.task(max_attempts=1)
def zombie_step(tag: str, seconds: float) -> int:
    """Runs a step that outlasts its frozen worker's lease; its record is then refused."""

    def slow() -> int:
        r().rpush(f"test:started:{tag}", os.getpid())
        time.sleep(seconds)
        return os.getpid()

    try:
        return int(kubeq.step("slow", slow))
    except kubeq.LeaseLost as exc:
        r().rpush(f"test:refused:{tag}", f"{os.getpid()} {exc}")
        raise


@app.task(max_attempts=1)
def napper(tag: str, seconds: float) -> list[int]:
    """A step, a durable sleep, another step."""
    before = kubeq.step("before", effect, tag, "before")
    kubeq.sleep(seconds)
    after = kubeq.step("after", effect, tag, "after")
    return [before, after]


@app.task(max_attempts=1)
async def async_napper(tag: str, seconds: float, key: str) -> list[Any]:
    """The async forms: a step, a sleep, a wait for a signal."""

    async def counted() -> int:
        return effect(tag, "before")

    before = await kubeq.astep("before", counted)
    await kubeq.asleep(seconds)
    payload = await kubeq.await_for(key, timeout=600)
    return [before, payload]


@app.task(max_attempts=1)
def approver(tag: str, key: str, timeout: float | None = None) -> Any:
    """Asks, waits for a signal (or times out, caught), then records the decision."""
    kubeq.step("ask", effect, tag, "ask")
    try:
        payload = kubeq.wait_for(key, timeout=timeout)
    except kubeq.WaitTimeout as exc:
        payload = {"timed_out": str(exc)}
    kubeq.step("decide", effect, tag, "decide")
    return payload


@app.task(max_attempts=1)
def child(x: int) -> int:
    return x + 1


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(max_attempts=1)
def big_step(size: int) -> str:
    try:
        kubeq.step("big", lambda: "x" * size)
    except kubeq.StepTooLarge as exc:
        return str(exc)
    return "recorded"


@app.task(max_attempts=1, pool="process")
def child_napper(tag: str, seconds: float) -> list[int]:
    """``napper`` in a process-pool child: the suspension crosses the process boundary."""
    before = kubeq.step("before", effect, tag, "before")
    kubeq.sleep(seconds)
    return [before, kubeq.step("after", effect, tag, "after"), os.getpid()]


def charged(tag: str, name: str) -> str:
    """An idempotent side effect (the documented pattern): counted every time it runs,
    applied once per job and step, keyed by the job id and the step name."""
    r().incr(f"test:ran:{tag}:{name}")
    while not r().exists(f"test:gate:{tag}:{name}"):
        time.sleep(0.05)
    key = f"{kubeq.current_job(required=True).id}:{name}"
    if r().set(f"test:applied:{key}", "1", nx=True):
        r().incr(f"test:eff:{tag}:{name}")
    return f"{name} done"


@app.task(max_attempts=1)
def saga(tag: str) -> list[Any]:
    """Three steps, a sleep and a wait; the test kills its worker inside each step and
    between two steps (the code between them blocks on a gate too)."""
    charge = kubeq.step("charge", charged, tag, "charge")
    r().incr(f"test:ran:{tag}:between")
    while not r().exists(f"test:gate:{tag}:between"):
        time.sleep(0.05)
    kubeq.sleep(1.0)
    ship = kubeq.step("ship", charged, tag, "ship")
    delivered = kubeq.wait_for(f"delivered:{tag}", timeout=600)
    email = kubeq.step("email", charged, tag, "email")
    return [charge, ship, delivered, email]


@kubeq.step("charge")
def charge(tag: str, amount: int) -> dict[str, Any]:
    """A decorated step: each call inside a task is its own step (charge, charge#2...)."""
    return {"amount": amount, "run": effect(tag, f"charge-{amount}"), "fee": fee(tag)}


@kubeq.step
def fee(tag: str) -> int:
    """Decorated too, but called inside ``charge``: a plain call, its record is charge's."""
    return effect(tag, "fee")


@kubeq.step("notify")
async def notify(tag: str, text: str) -> str:
    return f"{text} #{effect(tag, 'notify')}"


@app.task(max_attempts=1)
def decorated(tag: str, seconds: float) -> list[Any]:
    """Two calls of a decorated step, a durable sleep, a third call."""
    first, second = charge(tag, 10), charge(tag, 20)
    kubeq.sleep(seconds)
    return [first, second, charge(tag, 30)]


@app.task(max_attempts=1)
async def async_decorated(tag: str, seconds: float) -> list[Any]:
    """An async decorated step around a durable sleep."""
    before = await notify(tag, "before")
    ctx = kubeq.current_job(required=True)
    await asyncio.to_thread(ctx.set_progress, {"at": "sleep"})
    await asyncio.to_thread(ctx.update_meta, tag=tag)
    await kubeq.asleep(seconds)
    return [before, await notify(tag, "after")]
