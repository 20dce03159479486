"""What one operator costs, and how fast it still reacts, at 10, 100 and 1,000 TaskQueues.

    .venv/bin/python bench/operator_many_taskqueues.py --count 100 --seconds 60
    .venv/bin/python bench/operator_many_taskqueues.py --counts 10,100,1000 --seconds 60 \\
        --label after --results bench/results/operator-scale-DATE.json
    .venv/bin/python bench/operator_many_taskqueues.py --render \\
        bench/results/operator-scale-DATE.json

Starts (or reuses) the local control plane of this checkout and a private redis-server,
installs the CRD and, for each COUNT, runs one operator serving one fresh namespace
(``--namespace``) with COUNT TaskQueues (pollSeconds 1, minReplicas 0, maxReplicas 1,
jobsPerReplica 1), each with its own queue, all on the one Redis. Their worker pods select a
node that does not exist, so a scale-up creates a Pending pod and nothing runs: the bench
measures the operator and the control plane, not workers.

After a warm-up (every TaskQueue has a status and a Deployment; bounded by
``--warmup-timeout``, and a run that does not finish it says how far it got) it measures for
SECONDS while a feeder enqueues one job per second into FEED TaskQueues still at 0 replicas:

- the operator's CPU (utime + stime from /proc, % of one core) and RSS;
- API requests per second: deltas of the kube-apiserver's ``apiserver_request_total``
  (every client's; the idle control plane's own share is measured with no operator first);
- Redis commands per second (``INFO commandstats`` deltas, so commands run inside scripts
  count) and client reads per second (``total_reads_processed``: one per request or pipeline
  that arrives, i.e. round trips), the bench's own subtracted;
- backlog -> replicas raised: from a job's enqueue into a TaskQueue at 0 replicas until its
  Deployment's ``spec.replicas`` is 1 (a watch), p50/p99 over every fed TaskQueue;
- the load average and core count, because the machine is shared.

``--results`` appends the run to a results file; ``--render`` writes its tables into
bench/README.md and docs/scaling.md between ``<!-- operator-scale results=... -->`` markers
(``operator_scale_report.py``). Everything the bench started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "hack" / "cluster"), str(ROOT), str(ROOT / "bench")]

CLK = os.sysconf("SC_CLK_TCK")
NOWHERE = {"kubeq.dev/bench-node": "none"}
REQUEST = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_mb(pid: int) -> float:
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith("VmRSS"):
            return round(int(ln.split()[1]) / 1024, 1)
    return 0.0


def api_requests(api_client: Any) -> dict[str, float]:
    """apiserver_request_total summed by 'VERB resource[/subresource]'."""
    method, url, headers, body, _ = api_client.param_serialize(
        "GET", "/metrics", auth_settings=["BearerToken"]
    )
    r = api_client.call_api(method, url, header_params=headers, body=body)
    r.read()
    out: dict[str, float] = {}
    for m in REQUEST.finditer(r.data.decode()):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
        key = f"{labels.get('verb')} {labels.get('resource')}"
        if labels.get("subresource"):
            key += "/" + labels["subresource"]
        out[key] = out.get(key, 0.0) + float(m["value"])
    return out


def redis_counts(r: Any) -> tuple[int, int]:
    """(commands as Redis counts them, client reads processed)."""
    calls = sum(int(v["calls"]) for v in r.info("commandstats").values())
    return calls, int(r.info("stats")["total_reads_processed"])


def percentile(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))], 3)


class Env:
    """The cluster, Redis and clients shared by every run of one invocation."""

    def __init__(self) -> None:
        from kubernetes import config

        from localcluster.cluster import up
        from tests.operator.opsupport import Api
        from tests.support.redisserver import RedisServer

        self.info, self.started = up()
        self.work = Path(tempfile.mkdtemp(prefix="kubeq-opscale-"))
        self.redis_server = RedisServer(self.work / "redis")
        self.redis_server.start()
        self.api_client = config.new_client_from_config(
            config_file=self.info.kubeconfig, persist_config=False
        )
        self.api = Api(self.api_client)

    def kubectl(self, *a: str, check: bool = False) -> Any:
        import subprocess

        return subprocess.run(
            [str(Path(self.info.bin_dir) / "kubectl"), *a],
            text=True,
            capture_output=True,
            env=self.info.kubectl_env(),
            check=check,
        )

    def close(self) -> None:
        from localcluster.cluster import down

        self.redis_server.stop()
        self.api_client.close()
        if self.started:
            down(Path(self.info.state_dir))


def rates(env: Env, seconds: float) -> dict[str, Any]:
    """API requests and Redis figures per second over ``seconds`` with nothing added."""
    import redis

    r = redis.Redis.from_url(env.redis_server.url)
    a0, (c0, rd0) = api_requests(env.api_client), redis_counts(r)
    time.sleep(seconds)
    a1, (c1, rd1) = api_requests(env.api_client), redis_counts(r)
    r.close()
    per = {k: (a1[k] - a0.get(k, 0.0)) / seconds for k in a1}
    return {"api": per, "redis_cmds": (c1 - c0) / seconds, "redis_reads": (rd1 - rd0) / seconds}


def run_one(env: Env, count: int, a: argparse.Namespace) -> dict[str, Any]:
    import redis
    from kubernetes import client, watch

    import kubeq
    from kubeq_operator.names import deployment_name
    from tests.operator.opsupport import OperatorProcess, queue_of, taskqueue

    ns = f"opscale-{count}-{int(time.time())}"
    env.api.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    profile = ("-m", "cProfile", "-o", f"{a.profile}.{count}") if a.profile else ()
    op = OperatorProcess(
        env.info.kubeconfig, env.work / f"operator-{count}.log", "-n", ns, python_args=profile
    )
    names = [f"tq{i:04d}" for i in range(count)]
    by_deployment = {deployment_name(n): n for n in names}
    raised: dict[str, float] = {}
    stop = threading.Event()

    def watch_deployments() -> None:
        w = watch.Watch()
        while not stop.is_set():
            try:
                for ev in w.stream(env.api.apps.list_namespaced_deployment, ns, timeout_seconds=5):
                    d = ev["object"]
                    name = by_deployment.get(d.metadata.name)
                    if name and (d.spec.replicas or 0) >= 1 and name not in raised:
                        raised[name] = time.monotonic()
                    if stop.is_set():
                        break
            except Exception as e:  # a dropped watch: start again
                print(f"watch: {e}", file=sys.stderr)
                time.sleep(0.5)

    watcher = threading.Thread(target=watch_deployments, daemon=True)
    watcher.start()
    scaling = {"minReplicas": 0, "maxReplicas": 1, "jobsPerReplica": 1, "pollSeconds": a.poll}
    worker = {"podTemplate": {"spec": {"nodeSelector": NOWHERE}}}
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: env.api.create_tq(
                    taskqueue(n, ns, env.redis_server.url, scaling=scaling, worker=worker)
                ),
                names,
            )
        )
    app = kubeq.App(env.redis_server.url)
    r = redis.Redis.from_url(env.redis_server.url)
    result: dict[str, Any] = {"label": a.label, "taskqueues": count, "poll_seconds": a.poll}
    try:
        t0, ready = time.monotonic(), 0
        while time.monotonic() - t0 < a.warmup_timeout:
            items = env.api.custom.list_namespaced_custom_object(
                "kubeq.dev", "v1alpha1", ns, "taskqueues"
            )["items"]
            ready = sum(1 for tq in items if (tq.get("status") or {}).get("observedGeneration"))
            deps = len(env.api.apps.list_namespaced_deployment(ns).items)
            if ready == count and deps == count:
                break
            time.sleep(2)
        result["warmup_s"] = round(time.monotonic() - t0, 1)
        result["warmed_up"] = f"{ready}/{count}"
        time.sleep(3)
        fresh = [n for n in names if n not in raised]
        random.shuffle(fresh)
        fed: dict[str, float] = {}
        own_reads = 0
        load0 = os.getloadavg()
        cpu0, api0, (cmd0, rd0) = (
            cpu_seconds(op.proc.pid),
            api_requests(env.api_client),
            redis_counts(r),
        )
        w0 = time.monotonic()
        while time.monotonic() - w0 < a.seconds:
            batch = [fresh.pop() for _ in range(min(a.feed, len(fresh)))]
            if batch:
                calls = [kubeq.Call("bench.noop", (), queue=queue_of(n, ns)) for n in batch]
                app.enqueue_many(calls)
                now = time.monotonic()
                fed.update(dict.fromkeys(batch, now))
                own_reads += 1
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now if batch else 0.0)))
        wall = time.monotonic() - w0
        cpu = cpu_seconds(op.proc.pid) - cpu0
        api1, (cmd1, rd1) = api_requests(env.api_client), redis_counts(r)
        own_reads += 4  # the two INFO pairs
        load1 = os.getloadavg()
        grace = time.monotonic() + max(10.0, 5 * a.poll)
        while time.monotonic() < grace and any(n not in raised for n in fed):
            time.sleep(0.2)
        lat = [raised[n] - t for n, t in fed.items() if n in raised]
        api = {k: round((api1[k] - api0.get(k, 0.0)) / wall, 2) for k in api1}
        api = {k: v for k, v in sorted(api.items(), key=lambda kv: -kv[1]) if v > 0}
        result.update(
            window_s=round(wall, 1),
            operator_cpu_percent_of_one_core=round(100 * cpu / wall, 1),
            operator_rss_mb=rss_mb(op.proc.pid),
            api_requests_per_s=round(sum(api.values()), 1),
            api_requests_per_s_by_kind=dict(list(api.items())[:12]),
            status_patches_per_s=api.get("PATCH taskqueues/status", 0.0),
            redis_commands_per_s=round((cmd1 - cmd0) / wall),
            redis_reads_per_s=round((rd1 - rd0 - own_reads) / wall, 1),
            fed=len(fed),
            raised=len(lat),
            raise_p50_s=percentile(lat, 50),
            raise_p99_s=percentile(lat, 99),
            raise_max_s=percentile(lat, 100),
            load_avg_1m=[round(load0[0], 2), round(load1[0], 2)],
            cores=os.cpu_count(),
        )
        # a back-compatible line for bench/autoscale.py, which reads these keys
        result["queues_fed_per_s"] = a.feed
        return result
    finally:
        stop.set()
        app.close()
        r.close()
        # the TaskQueues first, while their operator runs (it removes its finalizers), then
        # the namespace: the other order leaves the loops posting into a namespace that is gone
        env.kubectl(
            "delete", "taskqueues", "--all", "-n", ns, "--wait=true", f"--timeout={a.cleanup}s"
        )
        op.stop()
        env.kubectl("delete", "namespace", ns, "--wait=false")
        watcher.join(10)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=None, help="one run of COUNT TaskQueues")
    ap.add_argument("--counts", default="100", help="comma-separated counts, one run each")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--poll", type=float, default=1.0)
    ap.add_argument("--feed", type=int, default=5, help="TaskQueues fed a first job per second")
    ap.add_argument("--warmup-timeout", type=float, default=600)
    ap.add_argument("--cleanup", type=int, default=300, help="seconds to wait for deletion")
    ap.add_argument("--label", default="current", help="what code this run measures")
    ap.add_argument("--results", default=None, help="append the runs to this results file")
    ap.add_argument("--render", default=None, help="render this results file into the docs")
    ap.add_argument("--baseline-seconds", type=float, default=20)
    ap.add_argument("--profile", default=None, help="cProfile the operator into PATH.COUNT")
    a = ap.parse_args()
    if a.render:
        import operator_scale_report

        operator_scale_report.render_docs(a.render)
        return 0
    counts = [a.count] if a.count else [int(c) for c in a.counts.split(",")]
    env = Env()
    try:
        from tests.operator.opsupport import install_crd

        install_crd(env.kubectl)
        base = rates(env, a.baseline_seconds)
        baseline = {
            "api_requests_per_s": round(sum(base["api"].values()), 1),
            "redis_commands_per_s": round(base["redis_cmds"]),
        }
        for count in counts:
            res = run_one(env, count, a)
            res["idle_control_plane"] = baseline
            print(json.dumps(res, indent=2), flush=True)
            if a.results:
                import operator_scale_report

                operator_scale_report.append(a.results, res)
    finally:
        env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
