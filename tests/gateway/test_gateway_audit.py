"""A job cancelled or aborted through the gateway (DELETE) is an admin action: it lands in
the audit stream naming the caller's ServiceAccount and the gateway, and as an Event on the
TaskQueue (a real kube-apiserver, a real Redis). A job's tags travel through the gateway."""

from __future__ import annotations

import json
import time

import kubeq
from kubeq.store import audit
from tests.gateway.conftest import World

ADD = {"task": "qtasks.add", "args": [1, 2]}


def _events(world: World, reason: str, job_id: str) -> list[dict[str, object]]:
    """The Events of ``reason`` on tq-a about ``job_id`` (the package's other tests cancel
    jobs of tq-a through the gateway too, and each of those is an Event as well)."""
    out = world.kubectl(
        "get", "events", "-n", world.namespace, "-o", "json",
        "--field-selector", f"involvedObject.name=tq-a,reason={reason}",
    )  # fmt: skip
    items = json.loads(out.stdout or "{}").get("items", [])
    return [e for e in items if job_id in str(e.get("message", ""))]


def test_delete_is_audited_and_posted_as_an_event(world: World) -> None:
    alice = world.token("alice")
    for job_id in ("audit-del", "audit-abort"):
        body = {**ADD, "id": job_id, "delay": 3600, "tags": ["via-gateway"]}
        status, _ = world.gateway.call("POST", world.jobs("tq-a"), body, alice)
        assert status == 201
    status, body = world.gateway.call("DELETE", world.jobs("tq-a") + "/audit-del", token=alice)
    assert (status, body["stopped"]) == (200, True), body
    path = world.jobs("tq-a") + "/audit-abort?abort=true"
    status, body = world.gateway.call("DELETE", path, token=alice)
    assert (status, body["stopped"]) == (200, True), body
    status, body = world.gateway.call("DELETE", world.jobs("tq-a") + "/audit-del", token=alice)
    assert body["stopped"] is False  # nothing done: nothing recorded

    app = kubeq.App(world.redis_url)
    tagged = app.queue(world.queue("tq-a")).find(tags=["via-gateway"])
    assert sorted((j.id, j.status) for j in tagged.jobs) == [
        ("audit-abort", "aborted"),
        ("audit-del", "cancelled"),
    ]
    mine = [e for e in audit.read(app.redis, app.prefix, 500) if e.target.startswith("audit-")]
    app.close()
    who = f"system:serviceaccount:{world.namespace}:alice"
    assert [(e.action, e.target, e.count, e.who, e.via) for e in mine] == [
        ("job.abort", "audit-abort", 1, who, "gateway"),
        ("job.cancel", "audit-del", 1, who, "gateway"),
    ]
    assert {e.queue for e in mine} == {world.queue("tq-a")}
    deadline = time.monotonic() + 60
    while not (
        _events(world, "JobCancelled", "audit-del") and _events(world, "JobAborted", "audit-abort")
    ):
        assert time.monotonic() < deadline, "no Event on the TaskQueue"
        time.sleep(0.5)
    (cancelled,) = _events(world, "JobCancelled", "audit-del")  # once: the repeat did nothing
    assert who in str(cancelled["message"])
    (aborted,) = _events(world, "JobAborted", "audit-abort")
    assert who in str(aborted["message"])
