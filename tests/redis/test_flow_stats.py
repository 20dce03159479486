"""The flow patterns in the queue's numbers: ``Queue.stats`` (and so `kubeq stats`, the
dashboard's queue page and the operator's gauges) counts debounced jobs waiting for their
window, singleton keys held, batches forming and the items in them (a batch is one job in
backlog, delayed and in flight); each number falls back once its jobs end."""

from __future__ import annotations

import qtasks
import redis
from starlette.testclient import TestClient

import kubeq
from kubeq.dashboard import Config, create_app
from kubeq.store.keys import QueueKeys
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker, run

T = qtasks.app.tasks


def test_stats_count_debounced_singletons_and_batched_items(
    app: kubeq.App, redis_url: str, start_worker: StartWorker
) -> None:
    q = app.queue("default")
    calls = [T["flowtasks.reindex_keyed"].s(doc, v) for doc in ("d1", "d2", "d3") for v in (1, 2)]
    calls += [T["flowtasks.sync_replace"].s(a, "t") for a in ("acct-1", "acct-2")]
    app.enqueue_many(calls)
    items = app.enqueue_many([T["flowtasks.slow_batch"].s(i) for i in range(7)])  # 5 a batch
    s = q.stats()
    assert (s.debounced, s.singleton_keys, s.batches_forming, s.batched_items) == (3, 2, 1, 7)
    assert s.backlog + s.delayed == 3 + 2 + 2  # a batch counts as one job there
    out = run(redis_url, "stats", "default")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    head = next(line for line in lines if "debounced" in line)
    row = next(line for line in lines if line.lstrip("│ ").startswith("default"))
    cols = [c.strip() for c in row.split("│") if c.strip()]
    assert "batched items" in head and cols[-4:] == ["3", "2", "1", "7"]
    dash = create_app(Config(redis_url=redis_url, cluster=False, read_only=True))
    with TestClient(dash, base_url="http://dash.test") as c:
        page = c.get("/queues/default").text
    assert 'data-k="batched_items">7<' in page and 'data-k="debounced">3<' in page
    # the full batch and the other jobs run; the slow batch's first run holds its worker
    r = redis.Redis.from_url(redis_url)
    r.set("flowtest:slow-first", 1)  # no run sleeps
    start_worker()
    for job in items:
        assert job.result(timeout=60) is not None
    wait_until(lambda: q.stats().singleton_keys == 0 and q.stats().debounced == 0, timeout=60)
    s = q.stats()
    assert (s.batches_forming, s.batched_items) == (0, 0)
    keys = QueueKeys.of("default")  # the indexes are pruned as their jobs end
    wait_until(lambda: q.stats() and r.zcard(keys.flows) + r.zcard(keys.batches) == 0)
