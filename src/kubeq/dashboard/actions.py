"""The dashboard's actions (POST handlers): pause, resume, purge, cancel, abort, requeue,
signal, log in. Each admin action is recorded in the audit stream (``auditing``).

Each checks the guard first (same origin, CSRF token, not read-only, logged in), then calls
the library's own function (``Queue.pause``, ``Queue.purge``, ``Job.cancel``,
``Queue.requeue_dead`` ...) and redirects back with a short message (POST, redirect, GET).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kubeq import serialization
from kubeq.dashboard.auditing import recorded
from kubeq.dashboard.security import Refused, client_address
from kubeq.dashboard.state import Dashboard
from kubeq.store.keys import validate_job_id, validate_queue_name


def _back(path: str, msg: str, **params: str) -> Response:
    query = urlencode({**params, "msg": msg})
    return RedirectResponse(f"{path}?{query}", status_code=303)


async def _checked(request: Request, *, action: bool = True) -> tuple[Dashboard, dict[str, str]]:
    dash: Dashboard = request.app.state.dash
    form = await request.form()
    fields = {k: str(v) for k, v in form.multi_items() if k != "ids"}
    fields["ids"] = "\n".join(str(v) for v in form.getlist("ids"))
    dash.guard.check_post(request, fields.get("csrf", ""), action=action)
    return dash, fields


def _refused(request: Request, exc: Exception) -> Response:
    dash: Dashboard = request.app.state.dash
    status = exc.status if isinstance(exc, Refused) else 400
    return dash.render(request, "error.html", status=status, message=str(exc))


async def login(request: Request) -> Response:
    try:
        dash, fields = await _checked(request, action=False)
    except Refused as exc:
        return _refused(request, exc)
    throttle, client = dash.guard.throttle, client_address(request)
    wait = throttle.retry_after(client)
    if wait:
        response = dash.render(
            request,
            "login.html",
            status=429,
            message=f"too many failed logins from {client}: try again in {wait} s",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    if dash.guard.login(request, fields.get("token", "")):
        throttle.succeeded(client)
        return _back("/", "logged in: actions are enabled")
    throttle.failed(client)
    return dash.render(
        request, "login.html", status=401, message="wrong token (see KUBEQ_DASHBOARD_TOKEN)"
    )


async def logout(request: Request) -> Response:
    try:
        dash, _ = await _checked(request, action=False)
    except Refused as exc:
        return _refused(request, exc)
    dash.guard.logout(request)
    return _back("/", "logged out")


async def queue_action(request: Request) -> Response:
    name, action = request.path_params["queue"], request.path_params["action"]
    try:
        validate_queue_name(name)
        dash, fields = await _checked(request)
    except (Refused, ValueError) as exc:
        return _refused(request, exc)
    q = dash.app.queue(name)
    path = f"/queues/{quote(name, safe='')}"
    if action in ("pause", "resume"):
        await run_in_threadpool(q.pause if action == "pause" else q.resume)
        backlog = (await run_in_threadpool(q.stats)).backlog
        await recorded(dash, request, f"queue.{action}", name, backlog, name)
        if action == "resume":
            return _back(path, f"queue {name} resumed")
        return _back(path, f"queue {name} paused: workers take no new jobs from it")
    if action == "purge":
        if fields.get("confirm", "") != name:
            return _back(path, f"not purged: type the queue name ({name}) to confirm")
        n = await run_in_threadpool(q.purge)
        await recorded(dash, request, "queue.purge", name, n, name)
        return _back(path, f"purged {n} waiting jobs from {name}")
    return _refused(request, ValueError(f"unknown queue action {action!r}: pause, resume, purge"))


async def job_action(request: Request) -> Response:
    name, job_id = request.path_params["queue"], request.path_params["job_id"]
    action = request.path_params["action"]
    try:
        validate_queue_name(name)
        validate_job_id(job_id)
        dash, fields = await _checked(request)
    except (Refused, ValueError) as exc:
        return _refused(request, exc)
    path = f"/jobs/{quote(name, safe='')}/{quote(job_id, safe='')}"
    if action == "cancel":
        done = await run_in_threadpool(dash.app.job(job_id, queue=name).cancel)
        if done:
            await recorded(dash, request, "job.cancel", job_id, 1, name)
        return _back(path, "cancelled" if done else "not cancelled: it is running or has ended")
    if action == "abort":
        stopped = await run_in_threadpool(dash.app.job(job_id, queue=name).abort)
        if stopped:
            await recorded(dash, request, "job.abort", job_id, 1, name)
        return _back(path, "aborted" if stopped else "not aborted: it has ended")
    if action == "requeue":
        again = await run_in_threadpool(dash.app.queue(name).requeue, [job_id])
        if again.count:
            await recorded(dash, request, "dlq.requeue", job_id, again.count, name)
        why = again.refused.get(job_id, "it is not a dead letter")
        return _back(path, "requeued" if again.count else f"not requeued: {why}")
    if action == "signal":
        return await _signal(dash, name, job_id, path, fields.get("data", "") or "null")
    return _refused(
        request, ValueError(f"unknown job action {action!r}: cancel, abort, requeue, signal")
    )


async def _signal(dash: Dashboard, name: str, job_id: str, path: str, data: str) -> Response:
    """Send the signal a sleeping job waits for (``Queue.signal``, docs/durable.md): every
    job of the queue waiting on that key wakes."""
    info = await run_in_threadpool(dash.app.job(job_id, queue=name).info)
    key = info.waiting_for
    if info.status != "sleeping" or not key:
        return _back(path, "not signalled: the job does not wait for a signal")
    try:
        payload = serialization.loads(data)
    except ValueError as exc:
        return _back(path, f"not signalled: the payload is not JSON ({exc})")
    try:
        woken = await run_in_threadpool(lambda: dash.app.queue(name).signal(key, payload))
    except (TypeError, ValueError) as exc:
        return _back(path, f"not signalled: {exc}")
    return _back(path, f"signal {key}: woke {woken} job{'' if woken == 1 else 's'}")


def _scope(ids: list[str] | None, task: str, reason: str) -> str:
    """What a dead-letter action chose, for its audit entry."""
    if ids is not None and not (task or reason):
        return " ".join(ids[:20]) + (f" (+{len(ids) - 20})" if len(ids) > 20 else "")
    return "all" + (f" task={task}" if task else "") + (f" reason={reason}" if reason else "")


async def dead_action(request: Request) -> Response:
    name, action = request.path_params["queue"], request.path_params["action"]
    try:
        validate_queue_name(name)
        dash, fields = await _checked(request)
    except (Refused, ValueError) as exc:
        return _refused(request, exc)
    if action not in ("requeue", "purge"):
        return _refused(request, ValueError(f"unknown action {action!r}: requeue, purge"))
    q = dash.app.queue(name)
    task, reason = fields.get("task", ""), fields.get("reason", "")
    ids: list[str] | None
    if fields.get("scope") == "all":
        ids = None  # the library's own "every dead letter"
        if task or reason:
            ids = await run_in_threadpool(dash.reader.matching_dead_ids, name, task, reason)
    else:
        ids = [i for i in fields["ids"].split("\n") if i]
        for i in ids:
            try:
                validate_job_id(i)
            except ValueError as exc:
                return _refused(request, exc)
        if not ids:
            return _back("/dead", "nothing selected", queue=name, task=task, reason=reason)
    if action == "requeue":
        done = await run_in_threadpool(q.requeue, ids)
        if done.count:
            await recorded(
                dash, request, "dlq.requeue", _scope(ids, task, reason), done.count, name
            )
        msg = f"requeued {done.count} dead letters of {name}"
        if done.refused:
            msg += f"; {len(done.refused)} refused: " + "; ".join(
                f"{i}: {why}" for i, why in list(done.refused.items())[:3]
            )
    else:
        if ids is None and fields.get("confirm", "") != name:
            return _back("/dead", f"not purged: type {name} to confirm", queue=name)
        n = await run_in_threadpool(q.purge_dead, ids)
        if n:
            await recorded(dash, request, "dlq.purge", _scope(ids, task, reason), n, name)
        msg = f"purged {n} dead letters of {name}"
    return _back("/dead", msg, queue=name, task=task, reason=reason)
