"""The targets against Redis's own limit and the peers' least memory (bench/limit_targets.py):
each figure is compared with the right bar, a finished job only with the peers that keep one,
and a variant of the run is shown beside kubeq."""

from __future__ import annotations

from typing import Any

from tests.support.modules import load_bench

limit_targets = load_bench("limit_targets", "bench_limit_targets")


def _run(kubeq: dict[str, float]) -> dict[str, Any]:
    peer = {"latency_p50": 1.3, "mem_waiting": 360, "worker_idle_mb": 25, "worker_drain_mb": 25}
    return {
        "medians": {
            "kubeq": kubeq,
            "kubeq:before": {**kubeq, "enqueue_single": 4000.0},
            "arq": {**peer, "mem_finished": 284},
            "celery": {**peer, "latency_p50": 1.2, "mem_finished": 3},  # keeps no result
        },
        "redis_limits": {"raw": {"enqueue_single": 10000.0, "drain_batched_32": 80000.0}},
    }


def _reached(text: str) -> dict[str, str]:
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ")]
    return {cells[0].lstrip("| "): cells[-1].rstrip(" |") for cells in rows[1:]}


def test_each_target_has_its_bar_and_a_finished_job_meets_only_peers_that_keep_one() -> None:
    kubeq = {
        "enqueue_single": 9100.0,
        "drain_best": 39000.0,
        "drain_default": 33000.0,
        "latency_p99": 1.2,
        "mem_waiting": 350,
        "mem_finished": 290,
        "worker_idle_mb": 25,
        "worker_drain_mb": 30,
    }
    text = limit_targets.render(_run(kubeq), "bench/results/x.json")
    reached = _reached(text)
    assert reached == {
        "one-call enqueue": "yes",  # 91 % of 10,000/s
        "drain, best settings": "**no**",  # 49 % of 80,000/s
        "drain, default settings": "yes",  # 41 %
        "enqueue -> start p99 (against the best peer's p50)": "yes",  # celery's 1.2 ms
        "Redis memory per waiting job": "yes",
        "Redis memory per finished job kept": "**no**",  # arq's 284 B, not celery's 3 B
        "worker memory, idle": "yes",
        "worker memory, draining peak": "**no**",
    }
    assert "<= arq's 284 B" in text and "4,000/s = 40%" in text  # the variant's column


def test_a_figure_the_run_did_not_measure_is_said_so() -> None:
    text = limit_targets.render(_run({"enqueue_single": 9000.0}), "bench/results/x.json")
    assert _reached(text)["drain, best settings"] == "not measured"
