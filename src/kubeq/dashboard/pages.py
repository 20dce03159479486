"""The dashboard's pages (GET handlers): overview, queue, workers, job, dead letters, scaling.

Each handler reads what its page needs, bounded (a page of ids at a time), and renders a
template; the live numbers then arrive over ``/events``. Redis reads through the library's
sync client run in Starlette's thread pool so the event loop keeps streaming.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kubeq import defaults
from kubeq.dashboard.data import job_view
from kubeq.dashboard.hub import View
from kubeq.dashboard.state import Dashboard
from kubeq.store.keys import validate_job_id, validate_queue_name


def _dash(request: Request) -> Dashboard:
    return request.app.state.dash  # type: ignore[no-any-return]


def _int(request: Request, name: str, default: int = 0) -> int:
    raw = request.query_params.get(name, "")
    try:
        return max(0, int(raw)) if raw else default
    except ValueError:
        return default


def _bad(request: Request, message: str) -> Response:
    return _dash(request).render(request, "error.html", status=400, message=message)


def _name(request: Request, param: str) -> str | None:
    """A queue name from the query string (None when absent); ValueError when malformed."""
    raw = request.query_params.get(param)
    return validate_queue_name(raw) if raw else None


async def overview(request: Request) -> Response:
    """One page of the queues that hold something: ``?after=NAME`` / ``?before=NAME``."""
    dash = _dash(request)
    try:
        after, before = _name(request, "after"), _name(request, "before")
    except ValueError as exc:
        return _bad(request, str(exc))
    listed = await dash.hub.directory.page(after=after, before=before)
    snap = await dash.hub.refresh(View(queues=tuple(listed.names)))
    history = dash.hub.history_of(listed.names)
    return dash.render(request, "overview.html", snap=snap, history=history, listed=listed)


async def queue(request: Request) -> Response:
    dash = _dash(request)
    name = request.path_params["queue"]
    try:
        validate_queue_name(name)
    except ValueError as exc:
        return _bad(request, str(exc))
    page = _int(request, "page")
    size = defaults.DASHBOARD_PAGE_SIZE
    rows = await run_in_threadpool(dash.reader.waiting, name, page, size)
    fair = await run_in_threadpool(dash.reader.fair, name)
    sleepers = await run_in_threadpool(dash.reader.sleeping, name, size)
    snap = await dash.hub.refresh(View(queues=(name,)))
    stats = next((q for q in snap["queues"] if q["queue"] == name), None)
    return dash.render(
        request,
        "queue.html",
        queue=name,
        rows=rows,
        page=page,
        size=size,
        stats=stats,
        fair=fair,
        sleepers=sleepers,
    )


async def workers(request: Request) -> Response:
    dash = _dash(request)
    snap = await dash.hub.refresh(View(workers=True))
    return dash.render(request, "workers.html", snap=snap, now=snap["now"])


async def job_search(request: Request) -> Response:
    dash = _dash(request)
    job_id = request.query_params.get("id", "").strip()
    queue_name = request.query_params.get("queue", "").strip()
    if not job_id:
        return dash.render(request, "job.html", view=None, searched="")
    try:
        validate_job_id(job_id)
        if queue_name:
            validate_queue_name(queue_name)
    except ValueError as exc:
        return _bad(request, str(exc))
    info = await run_in_threadpool(dash.reader.find, job_id, queue_name)
    if info is None:
        return dash.render(request, "job.html", status=404, view=None, searched=job_id)
    path = f"/jobs/{quote(info.queue, safe='')}/{quote(info.id, safe='')}"
    return RedirectResponse(path, status_code=303)


async def job(request: Request) -> Response:
    dash = _dash(request)
    name, job_id = request.path_params["queue"], request.path_params["job_id"]
    try:
        validate_queue_name(name)
        validate_job_id(job_id)
    except ValueError as exc:
        return _bad(request, str(exc))
    handle = dash.app.job(job_id, queue=name)
    info, steps = await run_in_threadpool(lambda: (handle.info(), handle.steps()))
    if info.status == "unknown" and not info.payload:
        return dash.render(request, "job.html", status=404, view=None, searched=job_id)
    view = job_view(info, steps=steps)
    return dash.render(request, "job.html", view=view, searched=job_id)


async def job_result(request: Request) -> Response:
    """The whole stored result, as a JSON download (never rendered as HTML)."""
    dash = _dash(request)
    name, job_id = request.path_params["queue"], request.path_params["job_id"]
    try:
        validate_queue_name(name)
        validate_job_id(job_id)
    except ValueError as exc:
        return _bad(request, str(exc))
    info = await run_in_threadpool(lambda: dash.app.job(job_id, queue=name).info())
    return Response(
        info.result,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{job_id}-result.json"'},
    )


async def dead(request: Request) -> Response:
    dash = _dash(request)
    names = (await dash.hub.directory.page()).names  # suggestions: one page, never all
    name = request.query_params.get("queue", "") or (names[0] if names else "")
    task = request.query_params.get("task", "").strip()
    reason = request.query_params.get("reason", "").strip()
    cursor = _int(request, "cursor")
    rows: list[Any] = []
    next_cursor = None
    if name:
        try:
            validate_queue_name(name)
        except ValueError as exc:
            return _bad(request, str(exc))
        rows, next_cursor = await run_in_threadpool(dash.reader.dead, name, cursor, task, reason)
    return dash.render(
        request,
        "dead.html",
        queues=names,
        queue=name,
        task=task,
        reason=reason,
        rows=rows,
        cursor=cursor,
        next_cursor=next_cursor,
    )


async def scaling(request: Request) -> Response:
    dash = _dash(request)
    snap = await dash.hub.refresh(View(cluster=True))
    cluster = snap.get("cluster")
    series = {k: list(v) for k, v in dash.hub.scaling.items()}
    return dash.render(request, "scaling.html", cluster=cluster, now=snap["now"], series=series)


async def login_form(request: Request) -> Response:
    return _dash(request).render(request, "login.html")
