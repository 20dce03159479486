"""The swarm's delivery account (bench/swarm.py): which jobs started more than once, and why.

kubeq delivers at least once: a job runs again when its lease lapsed (its holder renewed
nothing for a whole lease: stopped, starved or cut off) and another fetch delivered it
again. The swarm row says how many jobs did, from two sides:

- the workers: every start's job id and lease token (swarm_fleet.py); a job started under
  two tokens was delivered twice, one started twice under one token was run twice by one
  delivery (a defect);
- Redis: each sent job's ``deliveries`` and ``redelivered_from`` (set when a lapsed lease
  was found by a fetch, naming the holder that stopped renewing it), so a redelivery is
  counted with its reason even when the harness saw only one of its starts.

With ``longest_exposure_s`` (the longest a held job's lease may have gone unrenewed in Redis,
from the send of the last renewal known applied to the answer of the next) and
``longest_loop_stall_s`` (the longest a fleet process's event loop stood still: starved or
stopped, none of its workers could renew) the row tells a worker that truly stalled past its
lease from a defect: ``renewals_within_lease`` false explains lapses; a lapse while it is
true is a defect.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import kubeq

SHOWN = 10
"""Redelivered jobs listed in a row (all are counted)."""


def account(
    client: kubeq.App, sent: list[tuple[str, str]], reports: list[dict[str, Any]], lease_s: float
) -> dict[str, Any]:
    """The row's delivery figures: ``sent`` is (queue, job id) of every job enqueued."""
    starts: dict[str, set[str]] = {}
    runs: Counter[str] = Counter()
    for r in reports:
        for job_id, lease in r.get("runs", []):
            runs[job_id] += 1
            starts.setdefault(job_id, set()).add(str(lease))
    pipe = client.redis.pipeline(transaction=False)
    for queue, job_id in sent:
        pipe.hmget(client.queue(queue).keys.job(job_id), "deliveries", "redelivered_from")
    fields = pipe.execute() if sent else []
    reasons: Counter[str] = Counter()
    shown: list[dict[str, Any]] = []
    for (_, job_id), (deliveries, lapsed_from) in zip(sent, fields, strict=True):
        n = int(deliveries or 0)
        if n <= 1 and runs[job_id] <= 1:
            continue
        if runs[job_id] > len(starts.get(job_id, ())):
            reason = "run twice by one delivery (a defect)"
        elif lapsed_from:
            reason = "lease lapsed (its holder renewed nothing for a whole lease)"
        else:
            reason = "delivered again without a lapse (handed back or released)"
        reasons[reason] += 1
        if len(shown) < SHOWN:
            shown.append(
                {
                    "job": job_id,
                    "starts": runs[job_id],
                    "deliveries": n,
                    "lapsed_from": lapsed_from.decode() if lapsed_from else None,
                }
            )
    exposure = max((r.get("longest_exposure_s", 0.0) for r in reports), default=0.0)
    stall = max((r.get("longest_loop_stall_s", 0.0) for r in reports), default=0.0)
    kinds: Counter[str] = Counter()
    for r in reports:
        kinds.update(r.get("log_kinds", {}))
    return {
        "jobs_started_twice": sum(1 for n in runs.values() if n > 1),
        "jobs_delivered_twice": sum(reasons.values()),
        "redelivery_reasons": dict(reasons),
        "redelivered": shown,
        "longest_exposure_s": round(exposure, 2),
        "longest_loop_stall_s": round(stall, 2),
        "renewals_within_lease": max(exposure, stall) < lease_s,
        "worker_delivery_lines": dict(kinds),
    }
