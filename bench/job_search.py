"""How fast a job filter answers over 1,000,000 finished jobs on one Redis.

    .venv/bin/python bench/job_search.py [--jobs 1000000] \\
        [--results bench/results/job-search-DATE.json]
    .venv/bin/python bench/job_search.py --render bench/results/job-search-DATE.json

A private redis-server. The jobs go in through the real enqueue path (``App.enqueue_many``,
so enqueue.lua writes each job's hash and its search index entries: 10 tasks, every job
tagged ``customer:<i mod 1000>``, 1 in 100 also ``vip``). Then a loader script ends them as
ack.lua and dead.lua leave a job (not by running 1,000,000 tasks on 2 shared cores): 40
in 41 ``finished`` (out of the ready set, status, started_at, finished_at, attempts,
result, the result TTL on the hash), 1 in 41 ``failed`` (status, error, reason,
finished_at, in the dead-letter set). Each filter then runs ``--repeat`` times through
``kubeq.client.search.find`` (what ``Queue.find``, ``kubeq jobs`` and the dashboard call),
limit 100; the median and the worst time are reported with what it matched and how many
entries it read. The memory the index takes is measured with MEMORY USAGE. Prints one JSON
document; ``--results`` writes it; ``--render`` writes its table into docs/monitoring.md
between the ``<!-- job-search results=... -->`` markers. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

import kubeq
from kubeq.client.search import find
from kubeq.options import Call
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import fenced
from kubeq.testing.server import RedisServer

QUEUE = "orders"
TASKS = 10
CUSTOMERS = 1000
END = """
-- end the ready jobs as ack.lua (finished) and dead.lua (failed) leave them
local ready, dead, base = KEYS[1], KEYS[4], ARGV[1]
local n, every = tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
local ids = redis.call('ZPOPMIN', ready, n)
for i = 1, #ids, 2 do
  local id = ids[i]
  local jk = base .. 'job:' .. id
  local seq = tonumber(string.match(id, '(%d+)$'))
  if seq % every == 0 then  -- 1 in 41: every customer and task has failures
    redis.call('HSET', jk, 'status', 'failed', 'started_at', now, 'finished_at', now,
      'attempts', '3', 'error', 'ValueError: card declined', 'reason', 'failed 3 of 3 attempts')
    redis.call('ZADD', dead, now, id)
  else
    redis.call('HSET', jk, 'status', 'finished', 'started_at', now, 'finished_at', now,
      'attempts', '1', 'result', '2', 'lease', '0')
    redis.call('EXPIRE', jk, redis.call('HGET', jk, 'result_ttl'))
  end
end
return #ids / 2
"""
FILTERS: list[tuple[str, dict[str, Any]]] = [
    ("--task shop.t3 --status finished --since 1h", {"status": "finished", "task": "shop.t3",
                                                     "since": 3600}),
    ("--tag customer:123", {"tags": ["customer:123"]}),
    ("--tag customer:123 --status failed", {"status": "failed", "tags": ["customer:123"]}),
    ("--tag vip --task shop.t3 --status failed (no vip job is a shop.t3 job: the whole vip "
     "index is read)", {"status": "failed", "task": "shop.t3", "tags": ["vip"]}),
    ("--status failed --since 1h", {"status": "failed", "since": 3600}),
    ("--status cancelled (no job is: the worst case)", {"status": "cancelled"}),
]  # fmt: skip


def load(app: kubeq.App, n: int) -> tuple[float, float]:
    """Enqueue ``n`` jobs through the real path, then end them; (enqueue s, end s)."""
    t0 = time.perf_counter()
    step = 20_000
    for lo in range(0, n, step):
        calls = []
        for i in range(lo, min(n, lo + step)):
            tags = [f"customer:{i % CUSTOMERS}"] + (["vip"] if i % 100 == 7 else [])
            calls.append(
                Call(f"shop.t{i % TASKS}", (i,), queue=QUEUE, job_id=f"o{i:07}", tags=tags)
            )
        app.enqueue_many(calls)
    enqueued = time.perf_counter() - t0
    keys = QueueKeys.of(QUEUE, app.prefix)
    script = app.redis.register_script(END)
    t1 = time.perf_counter()
    while script(keys=fenced(keys.script_keys), args=[keys.base, 5000, 41]):
        pass
    return enqueued, time.perf_counter() - t1


def measure(app: kubeq.App, repeat: int) -> list[dict[str, Any]]:
    rows = []
    for label, kw in FILTERS:
        times, found = [], None
        for _ in range(repeat):
            t0 = time.perf_counter()
            found = find(app, [QUEUE], limit=100, **kw)
            times.append(time.perf_counter() - t0)
        assert found is not None
        rows.append(
            {
                "filter": label,
                "matched": len(found.jobs),
                "read": found.looked_at,
                "complete": found.complete,
                "median_ms": round(statistics.median(times) * 1000, 1),
                "max_ms": round(max(times) * 1000, 1),
            }
        )
    return rows


def index_memory(r: redis.Redis, prefix: str) -> dict[str, int]:
    keys = QueueKeys.of(QUEUE, prefix)
    names = [keys.ix_task(f"shop.t{t}") for t in range(TASKS)] + [keys.ix_tag("vip")]
    names += [keys.ix_tag(f"customer:{c}") for c in range(CUSTOMERS)]
    return {
        "index_bytes": sum(int(r.memory_usage(k, samples=0) or 0) for k in names),
        "used_memory": int(r.info("memory")["used_memory"]),
    }


def render(path: Path) -> None:
    doc = json.loads(path.read_text())
    lines = [
        f"{doc['jobs']:,} finished jobs ({doc['date']}, {doc['host']}); enqueue "
        f"{doc['enqueue_s']} s through enqueue.lua; the index takes "
        f"{doc['index_bytes'] / doc['jobs']:.0f} bytes per job "
        f"({doc['index_bytes'] / 2**20:.0f} MiB of {doc['used_memory'] / 2**20:.0f} MiB).",
        "",
        "| filter (`kubeq jobs -q orders ...`, limit 100) | matched | entries read "
        "| median | worst |",
        "|---|---|---|---|---|",
    ]
    for row in doc["filters"]:
        more = "" if row["complete"] else " (stopped: scan budget)"
        lines.append(
            f"| `{row['filter']}` | {row['matched']} | {row['read']:,}{more} "
            f"| {row['median_ms']} ms | {row['max_ms']} ms |"
        )
    target = Path("docs/monitoring.md")
    text = target.read_text()
    start = text.index("<!-- job-search results=")
    end = text.index("<!-- /job-search -->")
    head = f"<!-- job-search results={path} -->\n"
    target.write_text(text[:start] + head + "\n".join(lines) + "\n" + text[end:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--results", type=Path)
    p.add_argument("--render", type=Path)
    a = p.parse_args()
    if a.render:
        render(a.render)
        return
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            app = kubeq.App(server.url)
            enqueued, ended = load(app, a.jobs)
            doc = {
                "jobs": a.jobs,
                "date": time.strftime("%Y-%m-%d"),
                "host": f"{sys.platform}, shared 2 cores",
                "enqueue_s": round(enqueued, 1),
                "end_s": round(ended, 1),
                **index_memory(app.redis, app.prefix),
                "filters": measure(app, a.repeat),
            }
            app.close()
        finally:
            server.stop()
    out = json.dumps(doc, indent=1)
    print(out)
    if a.results:
        a.results.write_text(out + "\n")


if __name__ == "__main__":
    main()
