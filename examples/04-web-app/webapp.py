"""A web app that hands slow work to kubeq: POST enqueues and answers 202, GET reports.

flask --app webapp run            # the API
kubeq worker webapp               # the workers (the same module registers the task)
"""

from __future__ import annotations

import time

from flask import Flask, jsonify, request, url_for
from flask.typing import ResponseReturnValue

import kubeq
from kubeq.store.keys import validate_job_id

queue_app = kubeq.App()  # Redis from KUBEQ_REDIS_URL
app = Flask(__name__)


@queue_app.task(queue="reports", max_attempts=3)
def build_report(customer: str, months: int) -> dict[str, object]:
    """The slow part: pretend to aggregate a customer's orders, month by month, reporting
    progress that GET /reports/<id> shows while it runs."""
    job = kubeq.current_job(required=True)
    for month in range(months):
        time.sleep(0.2 / months)
        job.set_progress({"months_done": month + 1, "months": months})
    return {"customer": customer, "months": months, "orders": months * 7}


@app.post("/reports")
def create_report() -> ResponseReturnValue:
    body = request.get_json(silent=True) or {}
    customer, months = body.get("customer"), body.get("months", 12)
    if not isinstance(customer, str) or not customer:
        return jsonify(error="'customer' (a non-empty string) is required"), 400
    if not isinstance(months, int) or not 1 <= months <= 120:
        return jsonify(error="'months' must be an integer from 1 to 120"), 400
    job = build_report.delay(customer, months)
    status_url = url_for("report_status", job_id=job.id)
    return jsonify(job_id=job.id, status_url=status_url), 202, {"Location": status_url}


@app.get("/reports/<job_id>")
def report_status(job_id: str) -> ResponseReturnValue:
    try:
        job = queue_app.job(validate_job_id(job_id), queue="reports")
    except ValueError as exc:
        return jsonify(error=str(exc)), 400
    info = job.info()
    if info.status == "unknown":
        return jsonify(error="no such report (or it expired)"), 404
    if info.status == "finished":
        report = job.result(timeout=0)
        return jsonify(status="finished", report=report, progress=info.progress), 200
    if info.status == "failed":
        return jsonify(status="failed", reason=info.reason), 200
    return jsonify(status=info.status, progress=info.progress), 200
