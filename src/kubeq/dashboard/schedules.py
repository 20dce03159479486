"""The dashboard's Schedules page: every schedule with its next and last run, and its
pause / resume / trigger actions (guarded like every other action).

Paged by id (``?after=ID``), one page of hashes per request; times shown in each schedule's
own time zone, the one its cron line is read in.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from kubeq.dashboard.actions import _back, _checked, _refused
from kubeq.dashboard.auditing import who
from kubeq.dashboard.security import Refused
from kubeq.dashboard.state import Dashboard
from kubeq.schedules_time import iso
from kubeq.store import audit
from kubeq.store.keys import validate_job_id

PAGE = 100


def _when(ts: int | None, tz: str) -> str:
    return iso(ts, tz) if ts else ""


async def page(request: Request) -> Response:
    dash: Dashboard = request.app.state.dash
    after = request.query_params.get("after", "")
    if after:
        try:
            validate_job_id(after)  # the same characters as a schedule id
        except ValueError as exc:
            return dash.render(request, "error.html", status=400, message=str(exc))
    states = await run_in_threadpool(dash.app.schedules.list, after, PAGE)
    rows = [
        {
            "id": st.schedule.id,
            "owner": st.schedule.owner or "library",
            "task": st.schedule.task,
            "queue": st.schedule.queue,
            "when": f"cron {st.schedule.cron}"
            if st.schedule.cron
            else f"every {st.schedule.every}s",
            "timezone": st.schedule.timezone,
            "next": _when(st.next_due, st.schedule.timezone),
            "last": _when(st.last_due, st.schedule.timezone),
            "last_job": st.last_job or "",
            "state": "paused" if st.paused else ("ended" if st.next_due is None else "active"),
            "policies": f"missed {st.schedule.missed}, overlap {st.schedule.overlap}",
            "counts": f"{st.fired} fired, {st.missed} missed, {st.skipped} skipped",
        }
        for st in states
    ]
    more = rows[-1]["id"] if len(rows) == PAGE else ""
    return dash.render(request, "schedules.html", rows=rows, more=more)


async def action(request: Request) -> Response:
    sid, verb = request.path_params["schedule"], request.path_params["action"]
    try:
        validate_job_id(sid)
        dash, _ = await _checked(request)
    except (Refused, ValueError) as exc:
        return _refused(request, exc)
    s = dash.app.schedules
    with audit.acting_as(who(dash, request), "dashboard"):  # its audit entry names the user
        if verb in ("pause", "resume"):
            done = await run_in_threadpool(getattr(s, verb), sid)
            return _back("/schedules", f"schedule {sid} {verb}d" if done else f"no schedule {sid}")
        if verb == "trigger":
            try:
                job_id = await run_in_threadpool(s.trigger, sid)
            except KeyError:
                return _back("/schedules", f"no schedule {sid}")
            return _back("/schedules", f"schedule {sid}: enqueued {job_id}")
    return _refused(
        request, ValueError(f"unknown schedule action {verb!r}: pause, resume, trigger")
    )
