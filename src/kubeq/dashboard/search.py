"""The dashboard's job filter (``/find``): jobs of a queue by status, task, tags and age, the
same filter as ``kubeq jobs`` and ``Queue.find`` (read only; bounded)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from kubeq.client.search import STATUSES, check_filter, find
from kubeq.dashboard.state import Dashboard
from kubeq.store.keys import validate_queue_name

LIMIT = 200
SCAN = 20_000
"""Entries one page reads at most (then it says it stopped early): a request stays short."""
SINCE = {"": None, "15m": 900.0, "1h": 3600.0, "6h": 21600.0, "1d": 86400.0, "7d": 604800.0}


async def page(request: Request) -> Response:
    dash: Dashboard = request.app.state.dash
    p = request.query_params
    queue, status = p.get("queue", "").strip(), p.get("status", "failed")
    task, since = p.get("task", "").strip() or None, p.get("since", "")
    tags = p.get("tags", "").replace(",", " ").split()
    form = {
        "queue": queue,
        "status": status,
        "task": task or "",
        "since": since,
        "tags": " ".join(tags),
    }
    if not queue:
        return dash.render(
            request, "find.html", form=form, found=None, statuses=STATUSES, spans=list(SINCE)
        )
    try:
        validate_queue_name(queue)
        check_filter(status, tags)
        if status not in STATUSES or since not in SINCE:
            raise ValueError(
                f"status must be one of {', '.join(STATUSES)}; since one of "
                f"{', '.join(s for s in SINCE if s)}"
            )
    except ValueError as exc:
        return dash.render(request, "error.html", status=400, message=str(exc))
    q = dash.app.queue(queue)
    parts = await run_in_threadpool(lambda: q.partitions)
    found = await run_in_threadpool(
        lambda: find(
            dash.app,
            parts,
            status,
            task=task,
            tags=tags,
            since=SINCE[since],
            limit=LIMIT,
            scan=SCAN,
        )
    )
    return dash.render(
        request, "find.html", form=form, found=found, statuses=STATUSES, spans=list(SINCE)
    )
