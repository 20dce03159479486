"""A dashboard that reads a cluster posts each admin action as an Event on the TaskQueue that
owns the queue (who, what, how many), next to the operator's scaling Events, on a real
kube-apiserver; a queue no TaskQueue lists gets its audit entry only."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

import kubeq
from kubeq.dashboard import Config, create_app
from tests.operator.opsupport import install_crd, queue_of, taskqueue

pytestmark = [pytest.mark.cluster]


def _csrf(page: str) -> str:
    return page.split('<meta name="csrf" content="')[1].split('"', maxsplit=1)[0]


def _events(kubectl: Any, ns: str) -> list[dict[str, Any]]:
    out = kubectl("get", "events", "-n", ns, "-o", "json", "--field-selector",
                  "involvedObject.kind=TaskQueue,source=kubeq-dashboard")  # fmt: skip
    return list(json.loads(out.stdout or "{}").get("items", []))


def test_dashboard_actions_are_posted_on_the_taskqueue(
    k8s_namespace: str, kubectl: Any, local_cluster: Any, redis_url: str
) -> None:
    install_crd(kubectl)
    ns = k8s_namespace
    kubectl("apply", "-f", "-", input=json.dumps(taskqueue("mail", ns, redis_url)), check=True)
    queue = queue_of("mail", ns)
    app = kubeq.App(redis_url)
    job = app.queue(queue).enqueue_call("t.mail", (1,))
    app.queue("nobodys").enqueue_call("t.mail", (2,))
    config = Config(
        redis_url=redis_url,
        token="tok",
        kubeconfig=str(local_cluster.kubeconfig),
        namespace=ns,
    )
    with TestClient(create_app(config), base_url="http://dash.test") as c:
        csrf = _csrf(c.get("/login").text)
        c.post("/login", data={"csrf": csrf, "token": "tok"})
        csrf = _csrf(c.get("/").text)
        assert c.post(f"/queues/{queue}/pause", data={"csrf": csrf}).status_code == 200
        assert c.post(f"/jobs/{queue}/{job.id}/cancel", data={"csrf": csrf}).status_code == 200
        assert c.post("/queues/nobodys/pause", data={"csrf": csrf}).status_code == 200
    deadline = time.monotonic() + 60
    while len(_events(kubectl, ns)) < 2:
        assert time.monotonic() < deadline, _events(kubectl, ns)
        time.sleep(0.5)
    events = {e["reason"]: e for e in _events(kubectl, ns)}
    assert set(events) == {"QueuePaused", "JobCancelled"}
    assert events["QueuePaused"]["involvedObject"]["name"] == "mail"
    message = events["JobCancelled"]["message"]
    assert "dashboard-token@testclient" in message and job.id in message
    app.close()
