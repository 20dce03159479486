"""The targets against Redis's own limit and the peers' least memory, from one ``run.py`` run.

Rendered into bench/README.md (the ``limittargets`` block, bench/report.py): each target,
what it needs, this run's kubeq and, for every ``--variant`` of the run, the variant's figure
(the code before a change, measured in the same run, interleaved), and whether kubeq reached
it. The raw loops are ``redis_limits.py``'s (one process, the fewest round trips per job);
the peers' figures are the medians of the same run. A finished job is compared with the peers
that keep one (a result kept for a day, as kubeq does, or RQ's 500 s); Celery and Dramatiq
here keep none.
"""

from __future__ import annotations

from typing import Any

NEAR_ZERO_BYTES = 50
"""Below this a peer's finished-job figure is noise: it keeps nothing."""


def _best(
    med: dict[str, dict[str, Any]], key: str, keeps: bool = False
) -> tuple[str, float] | None:
    vals = [
        (s, float(v))
        for s, fig in med.items()
        if not s.startswith("kubeq")
        and (v := fig.get(key)) is not None
        and (not keeps or float(v) >= NEAR_ZERO_BYTES)
    ]
    return min(vals, key=lambda sv: sv[1]) if vals else None


def _rows(res: dict[str, Any], label: str) -> list[tuple[str, str, str, bool | None]]:
    """(target, needs, shown, reached) for one system label of the run."""
    med = res["medians"]
    k = med.get(label, {})
    raw = (res.get("redis_limits") or {}).get("raw", {})
    rows: list[tuple[str, str, str, bool | None]] = []

    def share(name: str, key: str, raw_key: str, raw_label: str, bar: float) -> None:
        got, limit = k.get(key), raw.get(raw_key)
        need = f">= {bar:.0%} of the {raw_label} ({limit:,.0f}/s)" if limit else "n/a"
        if got is None or not limit:
            rows.append((name, need, "n/a", None))
            return
        rows.append((name, need, f"{got:,.0f}/s = {got / limit:.0%}", got / limit >= bar))

    share("one-call enqueue", "enqueue_single", "enqueue_single", "raw one-LPUSH loop", 0.9)
    share("drain, best settings", "drain_best", "drain_batched_32", "raw batched loop", 0.5)
    share("drain, default settings", "drain_default", "drain_batched_32", "raw batched loop", 0.4)

    def least(name: str, key: str, unit: str, peer_key: str, keeps: bool = False) -> None:
        got, bp = k.get(key), _best(med, peer_key, keeps)
        if bp is None or got is None:
            rows.append((name, "n/a", "n/a", None))
            return
        show = {"ms": "{:.1f} ms", "B": "{:,.0f} B", "MB": "{:.0f} MB"}[unit]
        rows.append((name, f"<= {bp[0]}'s {show.format(bp[1])}", show.format(got), got <= bp[1]))

    least("enqueue -> start p99 (against the best peer's p50)", "latency_p99", "ms", "latency_p50")
    least("Redis memory per waiting job", "mem_waiting", "B", "mem_waiting")
    least("Redis memory per finished job kept", "mem_finished", "B", "mem_finished", keeps=True)
    least("worker memory, idle", "worker_idle_mb", "MB", "worker_idle_mb")
    least("worker memory, draining peak", "worker_drain_mb", "MB", "worker_drain_mb")
    return rows


def render(res: dict[str, Any], path: str) -> str:
    variants = [s for s in res["medians"] if s.startswith("kubeq:")]
    mine = _rows(res, "kubeq")
    others = {v: _rows(res, v) for v in variants}
    head = "| target | needs | kubeq | " + " | ".join(others) + (" | " if others else "")
    lines = [
        f"From `{path}` (medians of the run's repetitions).",
        "",
        head + "reached |",
        "|---|---|---|" + "---|" * len(others) + "---|",
    ]
    for i, (name, need, shown, ok) in enumerate(mine):
        cells = "".join(f"{others[v][i][2]} | " for v in others)
        reached = "not measured" if ok is None else ("yes" if ok else "**no**")
        lines.append(f"| {name} | {need} | {shown} | {cells}{reached} |")
    return "\n".join(lines)
