"""The gateway's enqueue latency beside the Python client's, rendered from the results file
that tests/gateway/test_gateway_load.py writes when ``KUBEQ_GATEWAY_LOAD_RESULTS`` names one
(block kind ``gateway`` in bench/README.md; bench/report.py finds and rewrites the block)."""

from __future__ import annotations

from typing import Any


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def gateway(res: dict[str, Any], path: str) -> str:
    """The table: each path's p50 and p99, the run's size and the machine's load."""
    g, p = res["gateway"], res["python"]
    return "\n".join(
        [
            f"Results: `{path}`; {res['jobs']:,} jobs each way, measured {res['measured_at']}, "
            f"{res['machine']}; the gateway's reviews cached {res['review_cache_s']:g} s.",
            "",
            "| path | p50 | p99 |",
            "|---|---|---|",
            f"| gateway, `POST .../jobs` (one job per request, {res['callers']} in flight) "
            f"| {_ms(g['p50_ms'])} | {_ms(g['p99_ms'])} |",
            f"| Python client, `enqueue_many` of one job (sequential) "
            f"| {_ms(p['p50_ms'])} | {_ms(p['p99_ms'])} |",
        ]
    )
