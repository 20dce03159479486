"""Where a kubeq job's bytes go in Redis: per waiting and per finished job, key by key and field
by field, for the code under test (the installed library, or a copy of ``src/`` given with
``--src``).

    .venv/bin/python bench/job_bytes.py --label after --results bench/results/job-bytes-DATE.json
    .venv/bin/python bench/job_bytes.py --label before --src /tmp/main/src --results ...
    .venv/bin/python bench/job_bytes.py --render bench/results/job-bytes-DATE.json

A private redis-server (no persistence). Waiting: N no-op jobs queued through the bulk path
(``app.enqueue_many``, as the bench's memory figure); finished: after a FLUSHALL, M such jobs
drained by one ``kubeq worker`` (the bench's tasks module) and the worker stopped. For each:
``used_memory`` (less the clients' buffers) per job from an empty server (fixed costs and a
young queue's small lease tokens included: the bench's memory scenario counts jobs after a
warm-up instead, ``bench/systems/common.py``); then per kind
of key (the part of its name after the queue's hash tag, ``job``, ``ready``, ``done``...)
``MEMORY USAGE`` (exact: ``SAMPLES 0``) summed and divided by the jobs, its encoding and TTL;
what is left is the keyspace's and the expiry table's bucket arrays. And one job hash field
by field: each field's bytes in its listpack (entry header, data, back-length; an integer
stored as one), the value shown for a no-op job. ``--render`` writes the table into
bench/README.md between its ``job-bytes`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.redisserver import RedisServer  # noqa: E402

QUEUE_KEY = re.compile(rb"^kubeq:\{default\}:([a-z_]+)")


def listpack_entry(value: bytes) -> int:
    """Bytes of one listpack entry (Redis 7's listpack.c): an integer in int64 range written
    canonically is stored as one (1 to 9 bytes), anything else as a string with a 1, 2 or
    5 byte header; then the back-length (1 byte below 128, 2 below 16384)."""
    data: int
    if re.fullmatch(rb"-?[1-9][0-9]{0,18}|0", value) and -(2**63) <= int(value) < 2**63:
        n = int(value)
        if 0 <= n <= 127:
            data = 1
        elif -4096 <= n <= 4095:
            data = 2
        elif -(2**15) <= n < 2**15:
            data = 3
        elif -(2**23) <= n < 2**23:
            data = 4
        elif -(2**31) <= n < 2**31:
            data = 5
        else:
            data = 9
    else:
        size = len(value)
        data = size + (1 if size < 64 else 2 if size < 4096 else 5)
    return data + (1 if data < 128 else 2 if data < 16384 else 3)


def used_memory(r: redis.Redis) -> int:
    info: dict[str, Any] = r.info("memory")
    return int(info["used_memory"]) - int(info.get("mem_clients_normal", 0))


def by_kind(r: redis.Redis, jobs: int) -> dict[str, Any]:
    """MEMORY USAGE per kind of key, per job; encodings and TTLs seen."""
    kinds: dict[str, dict[str, Any]] = {}
    for key in r.scan_iter(count=10000):
        m = QUEUE_KEY.match(key)
        kind = m.group(1).decode() if m else key.decode()
        k = kinds.setdefault(kind, {"keys": 0, "bytes": 0, "encodings": set(), "ttl": False})
        k["keys"] += 1
        k["bytes"] += int(r.memory_usage(key, samples=0) or 0)
        k["encodings"].add(str(r.object("encoding", key), "ascii"))
        k["ttl"] = k["ttl"] or r.pttl(key) > 0
    return {
        kind: {
            "keys": k["keys"],
            "bytes_per_job": round(k["bytes"] / jobs, 1),
            "encodings": sorted(k["encodings"]),
            "ttl": k["ttl"],
        }
        for kind, k in sorted(kinds.items())
    }


def one_job(r: redis.Redis) -> dict[str, Any]:
    """One job hash, field by field."""
    key = next(r.scan_iter(match="kubeq:{default}:job:*", count=10000))
    fields = cast("dict[bytes, bytes]", r.hgetall(key))
    return {
        "key": key.decode(),
        "memory_usage": r.memory_usage(key, samples=0),
        "encoding": str(r.object("encoding", key), "ascii"),
        "listpack_bytes": 7 + sum(listpack_entry(f) + listpack_entry(v) for f, v in fields.items()),
        "fields": [
            {
                "field": f.decode(),
                "value": v.decode(),
                "bytes": listpack_entry(f) + listpack_entry(v),
            }
            for f, v in fields.items()
        ],
    }


def measure(url: str, env: dict[str, str], n: int, finished: int) -> dict[str, Any]:
    code = (
        "import sys, kubeq; app = kubeq.App(sys.argv[1]); "
        "t = app.task(name='bench.noop')(lambda: None); n = int(sys.argv[2]); "
        "[app.enqueue_many([t.s() for _ in range(min(5000, n - i))]) for i in range(0, n, 5000)]"
    )
    r = redis.Redis.from_url(url)
    out: dict[str, Any] = {}
    for phase, jobs in (("waiting", n), ("finished", finished)):
        r.flushall()
        base = used_memory(r)
        subprocess.run([sys.executable, "-c", code, url, str(jobs)], env=env, check=True)
        if phase == "finished":
            kubeq = str(Path(sys.executable).with_name("kubeq"))
            args = [kubeq, "worker", "kubeq_bench", "--queue", "default", "--log-level", "warning"]
            worker = subprocess.Popen([*args, "--concurrency", "128"], env=env)
            deadline = time.monotonic() + 300
            while r.zcard("kubeq:{default}:ready") or r.zcard("kubeq:{default}:active"):
                assert time.monotonic() < deadline, "the worker did not drain the jobs"
                time.sleep(0.2)
            time.sleep(1.0)
            worker.terminate()
            worker.wait(60)
        sample = one_job(r)
        stats: dict[str, Any] = r.memory_stats()
        out[phase] = {
            "jobs": jobs,
            "used_memory_per_job": round((used_memory(r) - base) / jobs, 1),
            "memory_stats_per_job": {
                k: round(int(v) / jobs, 1)
                for k, v in {**stats, **stats.get("db.0", {})}.items()
                if k in ("overhead.hashtable.main", "overhead.hashtable.expires", "lua.caches")
            },
            "script_cache_bytes": int(r.info("memory").get("used_memory_scripts_eval", 0)),
            "by_kind": by_kind(r, jobs),
            "one_job": sample,
        }
    return out


def run(a: argparse.Namespace) -> None:
    server = RedisServer(Path(os.environ.get("TMPDIR", "/tmp")) / f"job-bytes-{os.getpid()}")
    server.start()
    try:
        env = dict(os.environ, KUBEQ_REDIS_URL=server.url, BENCH_REDIS_URL=server.url)
        paths = [str(ROOT / "bench" / "systems")]
        if a.src:
            paths.insert(0, a.src)
        env["PYTHONPATH"] = os.pathsep.join(paths)
        r = redis.Redis.from_url(server.url)
        result = {
            "label": a.label,
            "src": a.src or "installed",
            "redis": r.info("server")["redis_version"],
            **measure(server.url, env, a.n, a.finished),
        }
    finally:
        server.stop()
    path = Path(a.results)
    doc = json.loads(path.read_text()) if path.exists() else {"runs": []}
    doc["runs"] = [x for x in doc["runs"] if x["label"] != a.label] + [result]
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: result[k]["used_memory_per_job"] for k in ("waiting", "finished")}))


def render(path: Path) -> str:
    doc = json.loads(path.read_text())
    rel = path.resolve().relative_to(ROOT)
    lines = [f"<!-- job-bytes results={rel} -->"]
    for run_ in doc["runs"]:
        lines += ["", f"**{run_['label']}** (`{run_['src']}`, Redis {run_['redis']}):", ""]
        for phase in ("waiting", "finished"):
            p = run_[phase]
            lines.append(
                f"- {phase}, {p['jobs']:,} jobs: **{p['used_memory_per_job']:,.0f} B per job** "
                "(`used_memory` less the clients' buffers); by key, `MEMORY USAGE` per job: "
                + "; ".join(
                    f"`{kind}` {k['bytes_per_job']:,.0f} B ({'/'.join(k['encodings'])}"
                    f"{', with a TTL' if k['ttl'] else ''})"
                    for kind, k in p["by_kind"].items()
                    if k["bytes_per_job"] >= 1
                )
                + "; `MEMORY STATS` per job: "
                + ", ".join(f"`{k}` {v:,.0f} B" for k, v in p["memory_stats_per_job"].items())
                + " (`MEMORY USAGE` counts each key's keyspace entry too)."
            )
        lines += [
            "",
            "| job hash field | waiting: value | B | finished: value | B |",
            "|---|---|--:|---|--:|",
        ]
        w = {f["field"]: f for f in run_["waiting"]["one_job"]["fields"]}
        fin = {f["field"]: f for f in run_["finished"]["one_job"]["fields"]}
        for name in list(w) + [x for x in fin if x not in w]:
            a, b = w.get(name), fin.get(name)
            lines.append(
                f"| `{name}` | {'`' + a['value'] + '`' if a else '-'} | {a['bytes'] if a else ''} "
                f"| {'`' + b['value'] + '`' if b else '-'} | {b['bytes'] if b else ''} |"
            )
        ow, of = run_["waiting"]["one_job"], run_["finished"]["one_job"]
        lines.append(
            f"| listpack (7 B of header and end) | {ow['encoding']} | {ow['listpack_bytes']} "
            f"| {of['encoding']} | {of['listpack_bytes']} |"
        )
        lines.append(
            f"| `MEMORY USAGE` of the key (with its name and entry) | | {ow['memory_usage']} "
            f"| | {of['memory_usage']} |"
        )
    lines.append("<!-- /job-bytes -->")
    return "\n".join(lines)


def render_bench(path: Path) -> str:
    """The bench's own memory figures (``bench/run.py --groups memory``), system by system."""
    doc = json.loads(path.read_text())
    rel = path.resolve().relative_to(ROOT)
    runs = [r for r in doc["runs"] if r.get("scenario") == "memory"]
    warm = next((r["warm_jobs"] for r in runs if "warm_jobs" in r), None)
    lines = [
        f"<!-- job-bytes-bench results={rel} -->",
        f"`bench/run.py` memory scenario, one run ({doc['date']}); `used_memory` less the "
        "clients' buffers, per job"
        + (
            f", what the jobs counted add after {warm:,} queued (drained) first; the fixed "
            "bytes are what those first jobs took beyond as many counted ones (negative: "
            "fewer, as a hashtable doubles its buckets in the counted span):"
            if warm
            else ":"
        ),
        "",
        "| system | per waiting job (100,000 queued) | per finished job kept (5,000 drained) |"
        + (" fixed bytes, waiting | fixed bytes, finished |" if warm else ""),
        "|---|--:|--:|" + ("--:|--:|" if warm else ""),
    ]
    for r in runs:
        name = r["system"] + (f" ({r['variant']})" if r.get("variant") else "")
        fin = r["finished_bytes_per_job"]
        row = f"| {name} | {r['waiting_bytes_per_job']:,.0f} B | {fin:,.0f} B |"
        if warm:
            fixed = r.get("fixed_bytes", {})
            row += "".join(
                f" {fixed[k]:,} B |" if fixed.get(k) is not None else " - |"
                for k in ("waiting", "finished")
            )
        lines.append(row)
    lines.append("<!-- /job-bytes-bench -->")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--label", default="after")
    ap.add_argument("--src", help="a copy of src/ to measure instead of the installed library")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--finished", type=int, default=5_000)
    ap.add_argument("--results", default="bench/results/job-bytes.json")
    ap.add_argument("--render", help="write this results file's table into bench/README.md")
    ap.add_argument("--bench", help="and this bench/run.py results file's memory figures")
    a = ap.parse_args()
    if a.render:
        readme = ROOT / "bench" / "README.md"
        text = readme.read_text()
        block = render(Path(a.render))
        text = re.sub(r"<!-- job-bytes .*?<!-- /job-bytes -->", lambda _: block, text, flags=re.S)
        if a.bench:
            bench = render_bench(Path(a.bench))
            pattern = r"<!-- job-bytes-bench .*?<!-- /job-bytes-bench -->"
            text = re.sub(pattern, lambda _: bench, text, flags=re.S)
        readme.write_text(text)
        return
    run(a)


if __name__ == "__main__":
    main()
