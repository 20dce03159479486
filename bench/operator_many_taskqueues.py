"""How much CPU does one operator process use for many TaskQueues at a 1 s poll?

    .venv/bin/python bench/operator_many_taskqueues.py --count 100 --seconds 60

Starts (or reuses) the local control plane and a private redis-server, installs the CRD,
creates COUNT TaskQueues in a fresh namespace (pollSeconds 1, maxReplicas 0 so no pod
runs: the scaling path is computed but the bench measures the operator, not workers), and
keeps their numbers moving: a feeder enqueues a job into a few random queues every second,
so every pass reads a changing backlog and the status is patched (at most every 2 s).
After a warm-up (every TaskQueue has a status), it samples the operator's CPU time
(utime + stime from /proc) over SECONDS and prints CPU % of one core, plus the API
server's, and Redis' commands per second. Everything it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "hack" / "cluster"), str(ROOT)]

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def apiserver_pid(state_dir: Path) -> int | None:
    f = state_dir / "run" / "kube-apiserver.pid"
    if not f.exists():
        return None
    try:
        return int(json.loads(f.read_text())["pid"])
    except (ValueError, KeyError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--poll", type=float, default=1.0)
    ap.add_argument(
        "--feed", type=int, default=5, help="queues that get a new job each second (0: idle)"
    )
    ap.add_argument("--out", default=None, help="append the result as JSON to this file")
    ap.add_argument("--profile", default=None, help="write a cProfile of the operator here")
    args = ap.parse_args()

    from kubernetes import client, config

    import kubeq
    from localcluster.cluster import down, up
    from tests.operator.opsupport import Api, OperatorProcess, install_crd, taskqueue
    from tests.support.redisserver import RedisServer

    info, started = up()
    work = Path(tempfile.mkdtemp(prefix="kubeq-bench-"))
    redis_server = RedisServer(work / "redis")
    redis_server.start()
    api_client = config.new_client_from_config(config_file=info.kubeconfig, persist_config=False)
    api = Api(api_client)
    core = client.CoreV1Api(api_client)
    ns = f"bench-{int(time.time())}"

    def kubectl(*a: str, input: str | None = None, check: bool = False) -> Any:
        import subprocess

        return subprocess.run(
            [str(Path(info.bin_dir) / "kubectl"), *a],
            input=input,
            text=True,
            capture_output=True,
            env=info.kubectl_env(),
            check=check,
        )

    op: OperatorProcess | None = None
    try:
        install_crd(kubectl)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        profile = ("-m", "cProfile", "-o", args.profile) if args.profile else ()
        op = OperatorProcess(info.kubeconfig, work / "operator.log", python_args=profile)
        names = [f"tq{i:03d}" for i in range(args.count)]
        for name in names:
            api.create_tq(
                taskqueue(
                    name,
                    ns,
                    redis_server.url,
                    scaling={"minReplicas": 0, "maxReplicas": 0, "pollSeconds": args.poll},
                )
            )
        app = kubeq.App(redis_server.url)
        queues = [f"q-{ns}-{n}" for n in names]

        def feed() -> None:
            if args.feed:
                app.enqueue_many(
                    [
                        kubeq.Call("bench.noop", (), queue=q)
                        for q in random.sample(queues, min(args.feed, len(queues)))
                    ]
                )

        t0 = time.monotonic()
        while True:
            feed()
            done = sum(
                1
                for tq in api.custom.list_namespaced_custom_object(
                    "kubeq.dev", "v1alpha1", ns, "taskqueues"
                )["items"]
                if tq.get("status", {}).get("observedGeneration")
            )
            if done == args.count:
                break
            if time.monotonic() - t0 > 300:
                raise SystemExit(f"only {done}/{args.count} TaskQueues got a status in 300 s")
            time.sleep(1)
        warmup = time.monotonic() - t0
        time.sleep(5)
        apid = apiserver_pid(Path(info.state_dir))
        cpu0, api0 = cpu_seconds(op.proc.pid), cpu_seconds(apid) if apid else 0.0
        cmds0 = int(app.redis.info("stats")["total_commands_processed"])
        w0 = time.monotonic()
        while time.monotonic() - w0 < args.seconds:
            feed()
            time.sleep(1)
        wall = time.monotonic() - w0
        cpu = cpu_seconds(op.proc.pid) - cpu0
        api_cpu = (cpu_seconds(apid) - api0) if apid else None
        cmds = int(app.redis.info("stats")["total_commands_processed"]) - cmds0
        rss_kb = int(
            next(
                ln
                for ln in Path(f"/proc/{op.proc.pid}/status").read_text().splitlines()
                if ln.startswith("VmRSS")
            ).split()[1]
        )
        result = {
            "taskqueues": args.count,
            "poll_seconds": args.poll,
            "queues_fed_per_s": args.feed,
            "window_s": round(wall, 1),
            "warmup_to_all_status_s": round(warmup, 1),
            "operator_cpu_percent_of_one_core": round(100 * cpu / wall, 1),
            "operator_rss_mb": round(rss_kb / 1024, 1),
            "apiserver_cpu_percent_of_one_core": round(100 * api_cpu / wall, 1)
            if api_cpu is not None
            else None,
            "redis_commands_per_s": round(cmds / wall),
            "cores": os.cpu_count(),
        }
        print(json.dumps(result, indent=2))
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(result) + "\n")
        app.close()
    finally:
        with_op = op is not None
        if with_op:
            kubectl("delete", "namespace", ns, "--wait=false")
            kubectl("delete", "taskqueues", "--all", "-n", ns, "--wait=true", "--timeout=120s")
            assert op is not None
            op.stop()
        redis_server.stop()
        api_client.close()
        if started:
            down(Path(info.state_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
