"""10,000 jobs waiting on signals: no worker slot held, the fleet at zero, back up on signals.

    .venv/bin/python bench/durable_scale.py --jobs 10000 --keys 100 \\
        --results bench/results/durable-scale-DATE.json
    .venv/bin/python bench/durable_scale.py --render bench/results/durable-scale-DATE.json

Starts (or reuses) the local control plane of this checkout and a private redis-server,
installs the CRD and runs one operator serving one fresh namespace with one TaskQueue
(minReplicas 0, ``--max-replicas``, ``--per-replica`` jobs per replica). Its pods select a
node that does not exist, so its replicas follow the queue alone; the jobs are run by
``--workers`` burst worker processes on this machine (``kubeq worker durtasks --burst``, the
redis tier's durable tasks), which exit once nothing is ready and nothing runs, as pods scaled
in would.

Each job (``durtasks.approver``) records a step ("ask"), waits for a signal on one of
``--keys`` keys, then records a step ("decide"). The side effect of each step is a counter per
job in Redis (the ledger). The timeline:

1. enqueue JOBS; the Deployment rises (backlog / jobsPerReplica, up to maxReplicas);
2. the burst workers run every job to its wait and exit: QueueStats says sleeping == JOBS,
   backlog 0, in flight 0, no live worker;
3. the operator scales the Deployment to 0 and it stays there for ``--hold`` seconds;
4. one ``app.signal`` per key wakes the jobs: the Deployment comes back up with the backlog;
5. the burst workers finish every job; the ledger shows each step ran exactly once per job;
6. the Deployment goes back to 0.

The replicas are sampled every 0.25 s; each phase's time is from the enqueue. ``--results``
writes the run (with the sampled timeline) to a results file; ``--render`` writes a paragraph
from it into docs/durable.md between ``<!-- durable-scale results=... -->`` markers.
Everything the bench started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "hack" / "cluster"), str(ROOT), str(ROOT / "bench")]

NOWHERE = {"kubeq.dev/bench-node": "none"}
TASKS_DIR = ROOT / "tests" / "redis"
KUBEQ = str(Path(sys.executable).with_name("kubeq"))
DOC = ROOT / "docs" / "durable.md"
MARK = re.compile(
    r"(<!-- durable-scale results=(?P<path>\S+) -->\n)(?P<body>.*?)(<!-- /durable-scale -->)", re.S
)


class Sampler:
    """The Deployment's ``spec.replicas`` every 0.25 s, with the time since ``t0``."""

    def __init__(self, api: Any, ns: str, name: str, t0: float) -> None:
        self.api, self.ns, self.name, self.t0 = api, ns, name, t0
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def now(self) -> int:
        dep = self.api.deployment(self.ns, self.name)
        return -1 if dep is None else int(dep.spec.replicas or 0)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                n = self.now()
            except Exception as e:  # a dropped connection: look again
                print(f"sampler: {e}", file=sys.stderr)
                n = None
            if n is not None and (not self.samples or self.samples[-1][1] != n):
                self.samples.append((round(time.monotonic() - self.t0, 2), n))
            self.stop.wait(0.25)

    def latest(self) -> int:
        return self.samples[-1][1] if self.samples else -1

    def wait(self, ok: Any, what: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.samples and ok(self.latest()):
                return round(time.monotonic() - self.t0, 1)
            time.sleep(0.1)
        raise RuntimeError(f"{what}: not after {timeout} s; replicas {self.samples[-8:]}")


def burst(url: str, queue: str, n: int, concurrency: int, logs: Path, tag: str) -> float:
    """``n`` burst workers run what is ready, then exit; returns the seconds they took."""
    env = {**os.environ, "KUBEQ_REDIS_URL": url, "PYTHONPATH": str(TASKS_DIR)}
    t0, procs = time.monotonic(), []
    for i in range(n):
        log = open(logs / f"worker-{tag}-{i}.log", "wb")  # noqa: SIM115 - closed below
        args = ["worker", "durtasks", "-q", queue, "--burst", "--concurrency", str(concurrency)]
        p = subprocess.Popen(
            [KUBEQ, *args, "--log-level", "WARNING"],
            env=env,
            cwd=TASKS_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append((p, log))
    for p, log in procs:
        try:
            rc = p.wait(1800)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
        if rc != 0:
            raise RuntimeError(f"a burst worker exited {rc}; see {log.name}")
    return round(time.monotonic() - t0, 1)


def zero(n: int) -> bool:
    return n == 0


def up(n: int) -> bool:
    return n >= 1


def first(samples: list[tuple[float, int]], after: float, ok: Any) -> float:
    """When the replicas first satisfied ``ok`` at or after ``after`` (they may already have
    when ``after`` came: then the time of the sample in force at ``after``)."""
    before = [(t, n) for t, n in samples if t <= after]
    if before and ok(before[-1][1]):
        return after
    return next(t for t, n in samples if t >= after and ok(n))


def stats_of(queue: Any) -> dict[str, Any]:
    s = queue.stats()
    return {
        "backlog": s.backlog,
        "in_flight": s.in_flight,
        "sleeping": s.sleeping,
        "delayed": s.delayed,
        "dead": s.dead,
        "live_workers": s.live_workers,
    }


def ledger(r: Any, tags: list[str], step: str) -> dict[str, int]:
    """How many jobs ran ``step`` 0, 1 or more times (``test:eff:<tag>:<step>``)."""
    out = {"never": 0, "once": 0, "more": 0}
    for i in range(0, len(tags), 1000):
        for v in r.mget([f"test:eff:{t}:{step}" for t in tags[i : i + 1000]]):
            n = int(v or 0)
            out["never" if n == 0 else "once" if n == 1 else "more"] += 1
    return out


def run(env: Any, a: argparse.Namespace) -> dict[str, Any]:
    import redis
    from kubernetes import client

    import kubeq
    from kubeq_operator.names import deployment_name
    from tests.operator.opsupport import OperatorProcess, install_crd, queue_of, taskqueue

    install_crd(env.kubectl)
    ns = f"durscale-{int(time.time())}"
    env.api.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    op = OperatorProcess(env.info.kubeconfig, env.work / "operator.log", "-n", ns)
    q = queue_of("dur", ns)
    scaling = {
        "minReplicas": 0,
        "maxReplicas": a.max_replicas,
        "jobsPerReplica": a.per_replica,
        "pollSeconds": a.poll,
        "idleSecondsBeforeZero": a.idle,
        "scaleDown": {"stabilizationSeconds": a.idle, "periodSeconds": 1, "maxPodsPerStep": 10},
    }
    worker = {"podTemplate": {"spec": {"nodeSelector": NOWHERE}}}
    app = kubeq.App(env.redis_server.url)
    queue = app.queue(q)
    r = redis.Redis.from_url(env.redis_server.url)
    sampler: Sampler | None = None
    try:
        op.wait_ready()
        env.api.create_tq(
            taskqueue("dur", ns, env.redis_server.url, scaling=scaling, worker=worker)
        )
        sampler = Sampler(env.api, ns, deployment_name("dur"), time.monotonic())
        sampler.wait(lambda n: n == 0, "the Deployment created at 0", 120)
        sampler.stop.set()
        sampler = Sampler(env.api, ns, deployment_name("dur"), time.monotonic())
        run_id = f"b{int(time.time())}"
        tags = [f"{run_id}-{i}" for i in range(a.jobs)]
        keys = [f"go:{run_id}:{k}" for k in range(a.keys)]
        t: dict[str, float] = {}
        t0 = sampler.t0
        for i in range(0, a.jobs, 1000):
            app.enqueue_many(
                kubeq.Call("durtasks.approver", (tag, keys[j % a.keys]), queue=q)
                for j, tag in enumerate(tags[i : i + 1000], start=i)
            )
        t["enqueued"] = round(time.monotonic() - t0, 1)
        t["replicas_up_for_backlog"] = sampler.wait(lambda n: n >= 1, "up for the backlog", 120)
        peak_first = sampler.wait(lambda n: n >= a.max_replicas, "up to maxReplicas", 120)
        logs = env.work
        first_run = burst(env.redis_server.url, q, a.workers, a.concurrency, logs, "wait")
        t["all_sleeping"] = round(time.monotonic() - t0, 1)
        asleep = stats_of(queue)
        asleep_ledger = {"ask": ledger(r, tags, "ask"), "decide": ledger(r, tags, "decide")}
        t["replicas_zero_while_waiting"] = sampler.wait(
            lambda n: n == 0, "the fleet at zero while the jobs wait", 300
        )
        hold_until = time.monotonic() + a.hold
        held = True
        while time.monotonic() < hold_until:
            held = held and sampler.latest() == 0
            time.sleep(0.25)
        during_hold = stats_of(queue)
        t["signals_sent"] = round(time.monotonic() - t0, 1)
        woken = sum(app.signal(k, {"ok": k}, queue=q) for k in keys)
        t["signals_done"] = round(time.monotonic() - t0, 1)
        after_signals = stats_of(queue)
        t["replicas_up_after_signals"] = sampler.wait(lambda n: n >= 1, "up on signals", 120)
        peak_second = sampler.wait(lambda n: n >= a.max_replicas, "up to maxReplicas", 120)
        second_run = burst(env.redis_server.url, q, a.workers, a.concurrency, logs, "finish")
        t["all_finished"] = round(time.monotonic() - t0, 1)
        finished = stats_of(queue)
        final_ledger = {"ask": ledger(r, tags, "ask"), "decide": ledger(r, tags, "decide")}
        t["replicas_zero_after_finish"] = sampler.wait(
            lambda n: n == 0, "the fleet at zero once all finished", 300
        )
        # each change of the replicas as the sampler saw it, not when the bench looked
        t["replicas_up_for_backlog"] = first(sampler.samples, 0.0, lambda n: n >= 1)
        t["replicas_zero_while_waiting"] = first(sampler.samples, t["all_sleeping"], zero)
        t["replicas_up_after_signals"] = first(sampler.samples, t["signals_sent"], up)
        t["replicas_zero_after_finish"] = first(sampler.samples, t["all_finished"], zero)
        peak_first = first(sampler.samples, 0.0, lambda n: n >= a.max_replicas)
        peak_second = first(sampler.samples, t["signals_sent"], lambda n: n >= a.max_replicas)
        load = os.getloadavg()
        return {
            "label": a.label,
            "jobs": a.jobs,
            "keys": a.keys,
            "workers": a.workers,
            "concurrency": a.concurrency,
            "scaling": {k: scaling[k] for k in ("maxReplicas", "jobsPerReplica", "pollSeconds")}
            | {"idleSecondsBeforeZero": a.idle},
            "timeline_s": t,
            "replicas_max_reached_s": [peak_first, peak_second],
            "burst_run_s": {"to_the_waits": first_run, "to_the_end": second_run},
            "stats_all_sleeping": asleep,
            "stats_after_hold": during_hold,
            "held_zero_for_s": a.hold if held else None,
            "signals": len(keys),
            "woken": woken,
            "stats_after_signals": after_signals,
            "stats_all_finished": finished,
            "ledger_while_waiting": asleep_ledger,
            "ledger_at_end": final_ledger,
            "replicas_samples": sampler.samples,
            "load_avg_1m_end": round(load[0], 2),
            "cores": os.cpu_count(),
        }
    finally:
        if sampler is not None:
            sampler.stop.set()
        app.close()
        r.close()
        env.kubectl("delete", "taskqueues", "--all", "-n", ns, "--wait=true", "--timeout=120s")
        op.stop()
        env.kubectl("delete", "namespace", ns, "--wait=false")


def check(res: dict[str, Any]) -> list[str]:
    """What the run had to show, as failures (empty: it showed it all)."""
    n, bad = res["jobs"], []
    s = res["stats_all_sleeping"]
    if (s["sleeping"], s["backlog"], s["in_flight"], s["live_workers"]) != (n, 0, 0, 0):
        bad.append(f"not all sleeping with no slot held: {s}")
    if res["held_zero_for_s"] is None:
        bad.append("the Deployment left 0 while the jobs waited")
    if res["woken"] != n:
        bad.append(f"signals woke {res['woken']} of {n}")
    for step in ("ask", "decide"):
        if res["ledger_at_end"][step]["once"] != n:
            bad.append(f"step {step}: {res['ledger_at_end'][step]}")
    if res["stats_all_finished"]["sleeping"] or res["stats_all_finished"]["backlog"]:
        bad.append(f"jobs left: {res['stats_all_finished']}")
    return bad


def paragraph(path: str) -> str:
    """The paragraph for docs/durable.md from the last run of ``path`` (relative to the
    checkout's root)."""
    res = json.loads((ROOT / path).read_text())["runs"][-1]
    t, sc = res["timeline_s"], res["scaling"]
    text = (
        f"**At scale** (`{res['bench']}`, `{path}`, the local control plane, a real operator, "
        f"{res['cores']} shared cores): {res['jobs']:,} jobs each waited for one of "
        f"{res['keys']} signal keys. {res['workers']} burst worker processes "
        f"(concurrency {res['concurrency']}) ran them to their waits in "
        f"{res['burst_run_s']['to_the_waits']} s and exited; QueueStats then said sleeping "
        f"{res['stats_all_sleeping']['sleeping']:,}, backlog "
        f"{res['stats_all_sleeping']['backlog']}, in flight "
        f"{res['stats_all_sleeping']['in_flight']}, live workers "
        f"{res['stats_all_sleeping']['live_workers']}. The operator had the Deployment at "
        f"{sc['maxReplicas']} replicas for the backlog ({sc['jobsPerReplica']:,} jobs per replica) "
        f"and scaled it to 0 {round(t['replicas_zero_while_waiting'] - t['all_sleeping'], 1)} s "
        f"after the burst workers exited (idleSecondsBeforeZero "
        f"{sc['idleSecondsBeforeZero']}); it stayed at 0 for the {res['held_zero_for_s']} s "
        f"the bench held. {res['signals']} `app.signal` calls woke {res['woken']:,} jobs; "
        f"the Deployment was back up (1 replica or more) "
        f"{round(t['replicas_up_after_signals'] - t['signals_sent'], 1)} s after the first "
        f"signal and at {sc['maxReplicas']} with the backlog of "
        f"{res['stats_after_signals']['backlog']:,}; the workers finished every job "
        f"in {res['burst_run_s']['to_the_end']} s, each step once per job (ledger: ask "
        f"{res['ledger_at_end']['ask']['once']:,} once, decide "
        f"{res['ledger_at_end']['decide']['once']:,} once, "
        f"{res['ledger_at_end']['ask']['more'] + res['ledger_at_end']['decide']['more']} "
        f"twice or more), and the Deployment "
        f"was back at 0 "
        f"{round(t['replicas_zero_after_finish'] - t['all_finished'], 1)} s later.\n"
    )
    return textwrap.fill(text, 95) + "\n"


def shown(doc: str) -> tuple[str, str] | None:
    """(the results file the docs' block names, the block's text), or None without one."""
    m = MARK.search(doc)
    return None if m is None else (m["path"], m["body"])


def render(path: str) -> None:
    """Writes ``paragraph(path)`` into docs/durable.md's block."""
    text = paragraph(path)
    doc = DOC.read_text()
    new, n = MARK.subn(lambda m: m[1] + text + m[4], doc)
    if not n:
        raise SystemExit(f"no <!-- durable-scale results=... --> marker in {DOC}")
    DOC.write_text(new)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--keys", type=int, default=100, help="signal keys (jobs split evenly)")
    ap.add_argument("--workers", type=int, default=4, help="burst worker processes")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-replicas", type=int, default=10)
    ap.add_argument("--per-replica", type=int, default=1000, help="jobsPerReplica")
    ap.add_argument("--poll", type=float, default=1.0)
    ap.add_argument("--idle", type=float, default=5.0, help="idleSecondsBeforeZero")
    ap.add_argument("--hold", type=float, default=20.0, help="seconds to watch the fleet at 0")
    ap.add_argument("--label", default="current")
    ap.add_argument("--results", default=None, help="write the run into this results file")
    ap.add_argument("--render", default=None, help="render this results file into the docs")
    a = ap.parse_args()
    if a.render:
        render(a.render)
        return 0
    from operator_many_taskqueues import Env

    env = Env()
    try:
        res = {"bench": "bench/durable_scale.py", **run(env, a)}
    finally:
        env.close()
    res["failures"] = check(res)
    print(json.dumps({k: v for k, v in res.items() if k != "replicas_samples"}, indent=1))
    if a.results:
        p = Path(a.results)
        doc = json.loads(p.read_text()) if p.exists() else {"bench": res["bench"], "runs": []}
        doc["runs"].append(res)
        p.write_text(json.dumps(doc, indent=1) + "\n")
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
