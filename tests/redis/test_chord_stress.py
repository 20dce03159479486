"""Stress: 200 chords of 20 members on four real worker processes, one of them SIGKILLed
while it holds members (the chord's guarantee): every callback runs exactly once, with every
result in order, although members finish on different workers at the same instant, some are
retried, and the killed worker's members run again after its lease.

The callbacks live on a queue of their own (another hash slot) that the doomed worker does
not serve: a SIGKILL during a callback's own run would run it again by design (at least
once), which is not what this test is about.
"""

from __future__ import annotations

import collections
import json
import signal

import qtasks
import redis

import kubeq
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker

CHORDS, MEMBERS = 200, 20
RETRIED = [j for j in range(MEMBERS) if j % 7 == 3]  # (qtasks.chord_member)


def test_200_chords_of_20_members_each_call_back_once(
    app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    chords = [
        kubeq.chord(
            [qtasks.chord_member.s(i, j) for j in range(MEMBERS)],
            qtasks.chord_done.s(i).set(queue="cb"),
        ).delay(app)
        for i in range(CHORDS)
    ]
    # the workers start on the whole backlog: started before it, they kept up with this
    # loop on a loaded machine and had run nearly every member by its end, so the victim,
    # killed then, held none
    common = ("--concurrency", "16", "--lease", "10")
    victim = start_worker("--queue", "default", *common)
    for _ in range(3):
        start_worker("--queue", "default", "--queue", "cb", *common)
    # kill one worker while it holds members (running or fetched): they run again elsewhere
    # once its lease has passed, and their chords must still call back once. On a loaded
    # machine the victim may get little CPU: wait until it holds some, not for a count alone
    members = [m for c in chords for m in c.group.jobs]

    def victim_holds() -> list[kubeq.Job]:
        pipe = r.pipeline(transaction=False)
        for m in members:
            pipe.hmget(QueueKeys.of(m.queue).job(m.id), "status", "worker")
        return [
            m
            for m, (status, worker) in zip(members, pipe.execute(), strict=True)
            if status == b"active" and f":{victim.pid}:".encode() in (worker or b"")
        ]

    wait_until(
        lambda: r.hlen("test:member-pid") >= 800 and bool(victim_holds()),
        timeout=120,
        what="800 members run and the victim holding some",
    )
    victim.signal(signal.SIGKILL)
    victim.wait()
    held = victim_holds()
    for c in chords:
        assert c.result(timeout=120) == MEMBERS

    calls: collections.Counter[int] = collections.Counter()
    for raw in r.lrange("test:chord-calls", 0, -1):
        i, results = json.loads(raw)
        calls[i] += 1
        assert results == [i * 100 + j for j in range(MEMBERS)], f"chord {i} got {results}"
    assert calls == dict.fromkeys(range(CHORDS), 1), [i for i, n in calls.items() if n != 1]

    # the conditions the guarantee is about did happen
    assert held, "the killed worker held no member when it was killed"
    assert all(m.info().deliveries >= 2 for m in held), "a killed worker's member did not rerun"
    pids = {k.decode(): int(v) for k, v in r.hgetall("test:member-pid").items()}
    assert len(pids) == CHORDS * MEMBERS
    spread = [len({pids[f"{i}:{j}"] for j in range(MEMBERS)}) for i in range(CHORDS)]
    assert sum(1 for n in spread if n >= 2) >= CHORDS // 2, spread  # finished on several
    assert all(c.group.jobs[j].info().attempts >= 2 for c in chords[:20] for j in RETRIED)
    for name in ("default", "cb"):
        stats = app.queue(name).stats()
        assert (stats.backlog, stats.in_flight, stats.deferred) == (0, 0, 0), (name, stats)
