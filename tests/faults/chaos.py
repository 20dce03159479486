"""Everything at once, for the soak: toxics, worker kills, outages, Redis pauses, a flushed
script cache and garbage, at random.

Why a module: the soak in CI and the long soak by hand run the same chaos, sized differently.
``Chaos.step()`` does one random thing (seeded, so a failure can be replayed with the same
seed), ``Supervisor`` restarts workers that exited the way Kubernetes restarts a pod, and
``garbage`` writes what a careless hand or a bug can leave in a queue (defects 2
and 3): every such entry must end dead-lettered and never run.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import redis

from kubeq import defaults
from kubeq.store.keys import QueueKeys, ready_score
from tests.faults.fleet import StartWorker, WorkerProcess
from tests.support.toxiproxy import Proxy


@dataclass
class Supervisor:
    """Keeps ``size`` workers running; a worker that exited is replaced (a pod restart)."""

    start_worker: StartWorker
    args: tuple[str, ...]
    size: int
    workers: list[WorkerProcess] = field(default_factory=list)
    restarts: int = 0
    crashed: int = 0
    """Workers that exited by themselves with a non-zero code (not killed by us)."""

    def fill(self) -> None:
        for w in list(self.workers):
            code = w.proc.poll()
            if code is not None:
                self.workers.remove(w)
                if code > 0:
                    self.crashed += 1
                self.restarts += 1
        while len(self.workers) < self.size:
            self.workers.append(self.start_worker(*self.args))


def garbage(r: redis.Redis, keys: QueueKeys, kind: str, n: int) -> bytes:
    """Write one bad entry into the ready set (the oldest, so the next fetch reaches it)."""
    gid = (b"\xff\xfe-" if kind == "not utf-8" else b"garbage-") + str(n).encode()
    jk = keys.base.encode() + b"job:" + gid
    if kind == "wrong type":
        r.set(jk, b"not a hash")
    else:
        r.hset(
            jk,
            mapping={
                "payload": b'{"task": "ftasks.work", "args": ["garbage"], "kwargs": {}}',
                "priority": defaults.PRIORITY,
                "status": "queued",
                "enqueued_at": 0,
                "deliveries": 0,
                "attempts": "abc" if kind == "non-numeric attempts" else 0,
                "lease": 0,
                "max_deliveries": 2,
                "result_ttl": 600,
            },
        )
    r.zadd(keys.ready, {gid: ready_score(defaults.PRIORITY, 0)})
    return gid


GARBAGE_KINDS = ("wrong type", "non-numeric attempts", "not utf-8")


@dataclass
class Chaos:
    """One random fault at a time against the proxy, the workers and the queue."""

    rng: random.Random
    proxy: Proxy
    supervisor: Supervisor
    r: redis.Redis
    keys: QueueKeys
    with_garbage: bool = True
    done: Counter[str] = field(default_factory=Counter)
    garbage_ids: list[bytes] = field(default_factory=list)

    def step(self) -> None:
        actions = [
            self.latency,
            self.black_hole,
            self.resets,
            self.thin_pipe,
            self.cut_replies,
            self.outage,
            self.pause,
            self.script_flush,
            self.kill,
            self.terminate,
        ]
        if self.with_garbage:
            actions.append(self.garbage)
        action = self.rng.choice(actions)
        self.done[action.__name__] += 1
        action()
        self.supervisor.fill()

    def _window(self, kind: str, stream: str, seconds: float, **attributes: int) -> None:
        with self.proxy.toxic(kind, stream, **attributes):
            time.sleep(seconds)

    def latency(self) -> None:
        """Replies held up to 3 s (longer than the 2 s lease: heartbeats come late)."""
        self._window("latency", "downstream", self.rng.uniform(0.5, 3.0), latency=3000)

    def black_hole(self) -> None:
        stream = self.rng.choice(["upstream", "downstream"])
        self._window("timeout", stream, self.rng.uniform(0.3, 2.0), timeout=0)

    def resets(self) -> None:
        self._window("reset_peer", self.rng.choice(["upstream", "downstream"]), 0.1, timeout=0)

    def thin_pipe(self) -> None:
        self._window("bandwidth", "downstream", self.rng.uniform(0.5, 2.0), rate=32)

    def cut_replies(self) -> None:
        self._window("limit_data", "downstream", self.rng.uniform(0.3, 1.0), bytes=512)

    def outage(self) -> None:
        """Redis unreachable for the workers (the proxy refuses and closes connections)."""
        self.proxy.set_enabled(False)
        try:
            time.sleep(self.rng.uniform(0.3, 3.0))
        finally:
            self.proxy.set_enabled(True)

    def pause(self) -> None:
        """Redis itself stops answering everyone for up to 3 s (CLIENT PAUSE), past the lease
        when it is long."""
        self.r.client_pause(int(self.rng.uniform(300, 3000)))

    def script_flush(self) -> None:
        """Redis forgets the scripts (as after a restart): every client's next EVALSHA gets
        NOSCRIPT and loads its script again."""
        self.r.script_flush()

    def _victim(self) -> WorkerProcess | None:
        alive = [w for w in self.supervisor.workers if w.alive()]
        return self.rng.choice(alive) if alive else None

    def kill(self) -> None:
        if (w := self._victim()) is not None:
            w.signal(signal.SIGKILL)
            w.proc.wait()

    def terminate(self) -> None:
        """A pod shut down: SIGTERM, drain (1 s), hand back; the replacement comes at once."""
        if (w := self._victim()) is not None:
            w.signal(signal.SIGTERM)
            self.supervisor.workers.remove(w)
            self.supervisor.restarts += 1

    def garbage(self) -> None:
        kind = self.rng.choice(GARBAGE_KINDS)
        self.garbage_ids.append(garbage(self.r, self.keys, kind, len(self.garbage_ids)))
