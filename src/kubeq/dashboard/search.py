"""The dashboard's job filter (``/find``): jobs of a queue by status, task, tags and age, the
same filter as ``kubeq jobs`` and ``Queue.find`` (bounded); and its bulk actions
(``/find/cancel``, ``/find/requeue``): the page shows how many match, the person types that
count to confirm, the filter runs again and acts on what it matches then (audited)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from kubeq.client.search import STATUSES, Found, check_filter, find
from kubeq.dashboard.actions import _back, _checked, _refused
from kubeq.dashboard.auditing import recorded
from kubeq.dashboard.security import Refused
from kubeq.dashboard.state import Dashboard
from kubeq.store.keys import validate_queue_name

LIMIT = 200
SCAN = 20_000
"""Entries one page reads at most (then it says it stopped early): a request stays short."""
SINCE = {"": None, "15m": 900.0, "1h": 3600.0, "6h": 21600.0, "1d": 86400.0, "7d": 604800.0}


def _form(p: Any) -> dict[str, str]:
    tags = str(p.get("tags", "")).replace(",", " ").split()
    return {
        "queue": str(p.get("queue", "")).strip(),
        "status": str(p.get("status", "failed")),
        "task": str(p.get("task", "")).strip(),
        "since": str(p.get("since", "")),
        "tags": " ".join(tags),
    }


def _check(form: dict[str, str]) -> None:
    validate_queue_name(form["queue"])
    check_filter(form["status"], form["tags"].split())
    if form["status"] not in STATUSES or form["since"] not in SINCE:
        raise ValueError(
            f"status must be one of {', '.join(STATUSES)}; since one of "
            f"{', '.join(s for s in SINCE if s)}"
        )


async def _find(dash: Dashboard, form: dict[str, str]) -> Found:
    q = dash.app.queue(form["queue"])
    parts = await run_in_threadpool(lambda: q.partitions)
    return await run_in_threadpool(
        lambda: find(
            dash.app,
            parts,
            form["status"],
            task=form["task"] or None,
            tags=form["tags"].split(),
            since=SINCE[form["since"]],
            limit=LIMIT,
            scan=SCAN,
        )
    )


async def page(request: Request) -> Response:
    dash: Dashboard = request.app.state.dash
    form = _form(request.query_params)
    kw: dict[str, Any] = {"form": form, "statuses": STATUSES, "spans": list(SINCE)}
    if not form["queue"]:
        return dash.render(request, "find.html", found=None, **kw)
    try:
        _check(form)
    except ValueError as exc:
        return dash.render(request, "error.html", status=400, message=str(exc))
    found = await _find(dash, form)
    return dash.render(request, "find.html", found=found, **kw)


async def bulk(request: Request) -> Response:
    """Cancel (not started) or requeue (dead letters) every job the filter matches now, once
    the person typed how many the page showed."""
    action = request.path_params["action"]
    try:
        dash, fields = await _checked(request)
        form = _form(fields)
        _check(form)
        if action not in ("cancel", "requeue"):
            raise ValueError(f"unknown action {action!r}: cancel, requeue")
        if action == "requeue" and form["status"] != "failed":
            raise ValueError("requeue applies to status failed (dead letters)")
    except (Refused, ValueError) as exc:
        return _refused(request, exc)
    found = await _find(dash, form)
    if fields.get("confirm", "") != str(len(found.jobs)):
        msg = f"not done: {len(found.jobs)} jobs match now; type that number to confirm"
        return _back("/find", msg, **form)
    if action == "requeue":
        by_queue: dict[str, list[str]] = {}
        for j in found.jobs:
            by_queue.setdefault(j.queue, []).append(j.id)
        done = [
            await run_in_threadpool(dash.app.queue(name).requeue, ids)
            for name, ids in by_queue.items()
        ]
        n = sum(d.count for d in done)
    else:
        n = 0
        for j in found.jobs:
            n += bool(await run_in_threadpool(dash.app.job(j.id, j.queue).cancel))
    what = " ".join(f"{k}={v}" for k, v in form.items() if v)
    await recorded(dash, request, f"jobs.{action}", what, n, form["queue"])
    past = {"cancel": "cancelled", "requeue": "requeued"}[action]
    return _back("/find", f"{past} {n} of {len(found.jobs)} jobs", **form)
