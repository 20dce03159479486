"""``kubeq job ID`` and ``Job.edges()`` show a job's place in its workflow: its
parents and children, with their status, for depends_on across queues, chains (callbacks
handed off and not yet), chords, and a chord too wide to list in full. Real workers, the
real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import qtasks
import redis

import kubeq
from kubeq import defaults
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker

KUBEQ = str(Path(sys.executable).with_name("kubeq"))


def job_cli(redis_url: str, *args: str) -> str:
    env = {**os.environ, "KUBEQ_REDIS_URL": redis_url}
    out = subprocess.run(
        [KUBEQ, "job", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def edges_json(redis_url: str, job: kubeq.Job) -> tuple[list[object], list[object]]:
    shown = json.loads(job_cli(redis_url, job.id, "-q", job.queue, "-o", "json"))
    pick = ("queue", "id", "status", "via")
    return (
        [[e[k] for k in pick] for e in shown["parents"]],
        [[e[k] for k in pick] for e in shown["children"]],
    )


def test_depends_on_edges_across_queues(
    redis_url: str, app: kubeq.App, r: redis.Redis, start_worker: StartWorker
) -> None:
    start_worker("--queue", "default", "--queue", "io", "--concurrency", "4")
    a = app.queue().enqueue_call(qtasks.gate, ("edges",))
    b = app.queue("io").enqueue_call(qtasks.add, (1, 2))
    assert b.result(timeout=30) == 3
    wait_until(lambda: r.llen("test:started:edges"), what="the gated parent to start")
    c = app.queue().enqueue_call(qtasks.record_order, ("edges", 1), depends_on=[a, b])

    text = job_cli(redis_url, c.id)
    assert "    status: deferred\n" in text, text
    assert f"   parents: default/{a.id} (active)\n" in text, text
    assert f"            io/{b.id} (finished)\n" in text, text
    assert f"  children: default/{c.id} (deferred)\n" in job_cli(redis_url, a.id)
    assert f"  children: default/{c.id} (deferred)\n" in job_cli(redis_url, b.id, "-q", "io")

    r.set("test:go:edges", 1)
    c.result(timeout=30)
    parents, children = edges_json(redis_url, c)
    assert parents == [["default", a.id, "finished", ""], ["io", b.id, "finished", ""]]
    assert children == []
    # the same through the API
    assert [(e.queue, e.id, e.status) for e in c.edges().parents] == [
        ("default", a.id, "finished"),
        ("io", b.id, "finished"),
    ]
    assert [(e.queue, e.id, e.status) for e in a.edges().children] == [
        ("default", c.id, "finished")
    ]


def test_chain_edges_before_and_after_the_hand_off(
    redis_url: str, app: kubeq.App, start_worker: StartWorker
) -> None:
    # no worker on "later" yet: the callback is known from the parent's signature only
    parent = app.queue("later").enqueue_call(
        qtasks.add, (1, 1), on_success=qtasks.record_result.s("edges-later")
    )
    assert edges_json(redis_url, parent) == (
        [],
        [["default", f"{parent.id}.s", "not enqueued", "on_success"]],
    )
    start_worker("--queue", "default", "--queue", "later")
    flow = kubeq.chain(qtasks.add.s(1, 1), qtasks.add.s(10), qtasks.add.s(100)).delay(app)
    assert flow.result(timeout=30) == 112
    first, second, third = flow.jobs
    assert edges_json(redis_url, first) == (
        [],
        [["default", second.id, "finished", "on_success"]],
    )
    assert edges_json(redis_url, second) == (
        [["default", first.id, "finished", "on_success"]],
        [["default", third.id, "finished", "on_success"]],
    )
    text = job_cli(redis_url, third.id)
    assert f"   parents: default/{second.id} (finished, on_success)\n" in text, text
    wait_until(lambda: app.job(f"{parent.id}.s").status() == "finished", what="the callback")
    assert edges_json(redis_url, parent)[1] == [
        ["default", f"{parent.id}.s", "finished", "on_success"]
    ]


def test_chord_edges_and_a_chord_too_wide_to_list(
    redis_url: str, app: kubeq.App, start_worker: StartWorker
) -> None:
    start_worker("--concurrency", "8")
    c = kubeq.chord([qtasks.add.s(i, i) for i in range(3)], qtasks.collect.s("edges")).delay(app)
    assert c.result(timeout=30) == 6
    members = [["default", m.id, "finished", ""] for m in c.group.jobs]
    assert edges_json(redis_url, c.callback) == (members, [])
    for m in c.group.jobs:
        assert edges_json(redis_url, m)[1] == [["default", c.callback.id, "finished", ""]]

    # on a queue no worker serves: nothing runs, the edges are there at once
    wide = defaults.WORKFLOW_EDGES_KEPT + 5
    big = kubeq.chord(
        [qtasks.add.s(i, 0).set(queue="wide") for i in range(wide)],
        qtasks.collect.s("wide").set(queue="wide"),
    ).delay(app)
    edges = big.callback.edges()
    assert len(edges.parents) == defaults.WORKFLOW_EDGES_KEPT and edges.more_parents == 5
    assert {e.status for e in edges.parents} == {"queued"}
    text = job_cli(redis_url, big.callback.id, "-q", "wide")
    assert "status: deferred" in text
    assert "... and 5 more parents not listed" in text, text
