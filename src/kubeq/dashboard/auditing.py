"""Who pressed a dashboard button, the audit entry each action leaves, and the Audit page
(``/audit``: the newest entries, who did what, from where, when, how many; filtered by who,
action or queue, like ``kubeq audit``).

Behind an auth proxy (``--no-token``, the proxy checks users) the user is the one the proxy
names in ``X-Forwarded-User``, ``X-Auth-Request-User``, ``X-Auth-Request-Email``,
``X-Forwarded-Email`` or ``Remote-User`` (oauth2-proxy and most ingress auth set one);
with the shared action token it is ``dashboard-token@<client address>``.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from kubeq.dashboard import cluster
from kubeq.dashboard.security import client_address
from kubeq.dashboard.state import Dashboard
from kubeq.store import audit

REASONS = {
    "queue.pause": "QueuePaused",
    "queue.resume": "QueueResumed",
    "queue.purge": "QueuePurged",
    "job.cancel": "JobCancelled",
    "job.abort": "JobAborted",
    "dlq.requeue": "DeadLettersRequeued",
    "dlq.purge": "DeadLettersPurged",
}
"""The Event reason of each dashboard action."""

PROXY_USER_HEADERS = (
    "x-forwarded-user",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-forwarded-email",
    "remote-user",
)


def who(dash: Dashboard, request: Request) -> str:
    """The person behind a dashboard action, as well as the dashboard can tell."""
    if dash.guard.trust_proxy:
        for header in PROXY_USER_HEADERS:
            user = request.headers.get(header, "").strip()
            if user:
                return f"{user[:200]}@{client_address(request)}"
        return f"proxy-user@{client_address(request)}"
    return f"dashboard-token@{client_address(request)}"


async def recorded(
    dash: Dashboard, request: Request, action: str, target: str, count: int, queue: str
) -> None:
    """Record one dashboard action in the audit stream, and post it as an Event on each
    TaskQueue that owns the queue, when the dashboard reads a cluster (its Scaling page)."""
    person = who(dash, request)
    await run_in_threadpool(
        lambda: audit.record(
            dash.app.redis,
            dash.app.prefix,
            action,
            target,
            count,
            person,
            queue=queue,
            via="dashboard",
        )
    )
    reader = dash.cluster_reader
    if reader is None or dash.cluster_api is None or not queue:
        return
    reason = REASONS.get(action, "AdminAction")
    await reader()  # the TaskQueues, read at most every few seconds
    message = f"{person} ({action}) {target} of queue {queue}, {count} jobs, via kubeq-dashboard"
    for ns, name in reader.owners(queue, dash.app.prefix):
        await run_in_threadpool(cluster.post_event, dash.cluster_api, ns, name, reason, message)


SHOWN = 200
"""Entries the Audit page shows at most."""
READ = 2_000
"""Newest entries the page filters (the stream keeps up to ``audit.MAX_ENTRIES``)."""


async def page(request: Request) -> Response:
    dash: Dashboard = request.app.state.dash
    p = request.query_params
    form = {k: p.get(k, "").strip()[:200] for k in ("who", "action", "queue")}
    entries = await run_in_threadpool(audit.read, dash.app.redis, dash.app.prefix, READ)
    shown = [
        e
        for e in entries
        if form["who"].lower() in e.who.lower()
        and e.action.startswith(form["action"])
        and (not form["queue"] or e.queue == form["queue"])
    ][:SHOWN]
    return dash.render(request, "audit.html", entries=shown, form=form, read=len(entries))
