"""Soak: faults, kills, outages and garbage all at once, while a producer keeps sending jobs.

Three workers (2 s leases) reach Redis only through the proxy; a seeded ``Chaos`` does one
random thing at a time (latency longer than the lease, black holes, resets, a thin pipe,
replies cut part-way, an outage, Redis paused, its script cache flushed, SIGKILL, SIGTERM, a
garbage entry in the queue) and a ``Supervisor`` restarts workers that exited, as Kubernetes
would. Then the faults stop and
every job must end: each good job finished with exactly its result, each garbage entry
dead-lettered without running; how many ran twice is reported.

``make test`` runs a short soak: 60 s of chaos, then the drain. The long one, by hand:
``KUBEQ_SOAK_SECONDS=600 .venv/bin/pytest tests/faults/test_fault_soak.py``. ``KUBEQ_SOAK_SEED``
replays a run (the seed is printed and in the figures); ``KUBEQ_SOAK_GARBAGE=0`` leaves the
garbage out.
"""

from __future__ import annotations

import os
import random
import time

import pytest
import redis

import kubeq
from tests.faults.chaos import Chaos, Supervisor
from tests.faults.fleet import Ledger, StartWorker, check, enqueue_work, verdict
from tests.support.toxiproxy import Proxy

WORKER_ARGS = ("--queue", "soak", "--concurrency", "4", "--lease", "2", "--drain-timeout", "1")


def soak(
    seconds: float,
    batch: int,
    app: kubeq.App,
    r: redis.Redis,
    proxy: Proxy,
    ledger: Ledger,
    start_worker: StartWorker,
    scenario: str,
) -> None:
    seed = int(os.environ.get("KUBEQ_SOAK_SEED") or random.SystemRandom().randrange(10**6))
    print(f"{scenario}: seed {seed} (KUBEQ_SOAK_SEED={seed} replays it)")
    rng = random.Random(seed)
    q = app.queue("soak")
    supervisor = Supervisor(start_worker, WORKER_ARGS, size=3)
    supervisor.fill()
    chaos = Chaos(rng, proxy, supervisor, r, q.keys, with_garbage=GARBAGE)
    expected: dict[str, str] = {}
    batches = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        expected |= enqueue_work(
            app, ledger, "soak", batch, seconds=rng.uniform(0, 0.2), tag=f"b{batches}"
        )
        batches += 1
        chaos.step()
        time.sleep(rng.uniform(0.1, 0.5))
    proxy.clear()
    supervisor.fill()
    figures = verdict(
        scenario,
        app,
        "soak",
        expected,
        ledger,
        timeout=180,
        notes=(
            f"seed {seed}; {sum(chaos.done.values())} faults "
            f"({', '.join(f'{k} {v}' for k, v in sorted(chaos.done.items()))}); "
            f"{supervisor.restarts} restarts, {supervisor.crashed} crashed; "
            f"{len(chaos.garbage_ids)} garbage"
        ),
    )
    not_dead = [g for g in chaos.garbage_ids if r.zscore(q.keys.dead, g) is None]
    check(figures)
    assert not not_dead, f"garbage entries not dead-lettered: {not_dead}"
    ran = {job for job in ledger.runs() if job == "garbage"}
    assert not ran, "a garbage entry ran as a job"
    assert supervisor.crashed == 0, (
        f"{supervisor.crashed} workers exited by themselves (a crash loop in Kubernetes)"
    )


SOAK_SECONDS = float(os.environ.get("KUBEQ_SOAK_SECONDS", "60"))
GARBAGE = os.environ.get("KUBEQ_SOAK_GARBAGE", "1") != "0"
"""``KUBEQ_SOAK_GARBAGE=0`` leaves garbage out (to tell its defects from the others')."""


@pytest.mark.timeout(SOAK_SECONDS + 400)
def test_soak_everything_at_once(
    app: kubeq.App, r: redis.Redis, proxy: Proxy, ledger: Ledger, start_worker: StartWorker
) -> None:
    batch = 20 if SOAK_SECONDS <= 120 else 40
    soak(SOAK_SECONDS, batch, app, r, proxy, ledger, start_worker, f"soak {SOAK_SECONDS:.0f} s")
