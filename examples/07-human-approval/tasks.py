"""A report that waits for a manager's approval: built once, approved by a human (days
later, maybe), then published. While it waits, it holds no worker (docs/durable.md)."""

from __future__ import annotations

import hashlib
from typing import Any

import kubeq

app = kubeq.App()
THREE_DAYS = 3 * 86_400


def build_report(report_id: str) -> dict[str, str]:
    """The expensive part: done once, whatever happens after."""
    body = f"report {report_id}: all figures up"
    return {"path": f"reports/{report_id}.txt", "sha": hashlib.sha256(body.encode()).hexdigest()}


def ask_manager(report_id: str) -> str:
    """Send the approval request (an e-mail, a chat message): here, a line in the log."""
    print(f"approve with: kubeq signal approval:{report_id} --data '{{\"approved\": true}}'")
    return "asked"


def publish(report: dict[str, str], by: str) -> str:
    return f"https://reports.example/{report['sha'][:12]} (approved by {by})"


@app.task
def publish_report(report_id: str) -> dict[str, Any]:
    report = kubeq.step("build", build_report, report_id)
    kubeq.step("ask", ask_manager, report_id)
    try:
        decision = kubeq.wait_for(f"approval:{report_id}", timeout=THREE_DAYS)
    except kubeq.WaitTimeout:
        return {"report": report_id, "published": False, "why": "no decision within 3 days"}
    if not decision.get("approved"):
        return {"report": report_id, "published": False, "why": "rejected"}
    url = kubeq.step("publish", publish, report, decision.get("by", "a manager"))
    return {"report": report_id, "published": True, "url": url}
