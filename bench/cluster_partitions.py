"""ONE partitioned queue on a Redis Cluster of 1 master, then of 3 masters.

    .venv/bin/python bench/cluster_partitions.py [--jobs 20000] [--partitions 6]
        [--workers 4] [--concurrency 64] [--out bench/results/cluster-partitions.json]

A queue declared with ``partitions=P`` is P hash-tagged sub-queues; on 3 masters they spread
over the masters, on 1 they all share it. For each size the bench starts a real cluster
(Debian's redis-server, no replicas, loopback), fills the queue with ``--jobs`` async no-op
jobs, starts ``--workers`` real ``kubeq worker --burst`` processes on every partition and
times the drain (first worker start to an empty queue). It prints one JSON document: jobs/s
per size and, per master, the share of script calls and of Redis CPU seconds it took (the
per-master load split).

What 2 shared cores allow: the worker processes (Python) need far more CPU per job than Redis
does, so on this machine the drain is bound by the workers' CPU long before one master is
saturated; the figure shows that the load splits over the masters and what one master costs,
not the speed-up that machines with a core per master and per worker would show.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import kubeq  # noqa: E402
from kubeq.store.cluster import slot_of  # noqa: E402
from kubeq.store.keys import QueueKeys  # noqa: E402
from kubeq.store.partitions import names  # noqa: E402
from tests.support.cluster import ClusterTopology  # noqa: E402

KUBEQ = str(Path(sys.executable).with_name("kubeq"))


def _load(t: ClusterTopology) -> dict[int, tuple[int, float]]:
    """Per master: EVALSHA calls so far and Redis CPU seconds (user + sys)."""
    out = {}
    for port in t.master_ports():
        info = t.node(port).info()
        calls = int(t.node(port).info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))
        out[port] = (calls, float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
    return out


def run(masters: int, a: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        t = ClusterTopology(Path(tmp), masters=masters, replicas_per_master=0)
        t.start()
        try:
            app = kubeq.App(t.url, partitions={"hot": a.partitions})
            parts = names("hot", a.partitions)
            from cluster_tasks import noop

            for start in range(0, a.jobs, 1000):
                n = min(1000, a.jobs - start)
                app.enqueue_many([noop.s().set(queue="hot") for _ in range(n)])
            assert app.queue("hot").stats().backlog == a.jobs
            before = _load(t)
            env = {**os.environ, "KUBEQ_REDIS_URL": t.url, "PYTHONPATH": str(HERE)}
            argv = [KUBEQ, "worker", "cluster_tasks", "--burst", "--log-level", "WARNING"]
            argv += ["--concurrency", str(a.concurrency), "--pool", "async"]
            argv += [x for p in parts for x in ("--queue", p)]
            t0 = time.monotonic()
            procs = [
                subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL) for _ in range(a.workers)
            ]
            for p in procs:
                p.wait(timeout=1800)
            elapsed = time.monotonic() - t0
            after = _load(t)
            holds = dict.fromkeys(after, 0)
            for part in parts:
                holds[t.owner(slot_of(QueueKeys.of(part).base))] += 1
            left = app.queue("hot").stats()
            app.close()
        finally:
            t.stop()
    calls = {p: after[p][0] - before[p][0] for p in after}
    cpu = {p: after[p][1] - before[p][1] for p in after}
    total_calls, total_cpu = sum(calls.values()) or 1, sum(cpu.values()) or 1e-9
    return {
        "masters": masters,
        "jobs": a.jobs,
        "left": left.backlog + left.in_flight,
        "seconds": round(elapsed, 2),
        "jobs_per_second": round(a.jobs / elapsed),
        "per_master": [
            {
                "partitions": holds[p],
                "script_calls_share": round(calls[p] / total_calls, 3),
                "redis_cpu_seconds": round(cpu[p], 2),
                "redis_cpu_share": round(cpu[p] / total_cpu, 3),
            }
            for p in sorted(calls)
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    result = {
        "bench": "one partitioned queue, 1 vs 3 Redis Cluster masters",
        "cpus": os.cpu_count(),
        "settings": vars(a),
        "runs": [run(1, a), run(3, a)],
    }
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
