"""A FastAPI service that hands work to kubeq with the async client.

uvicorn reports:api --workers 2     # the API (each uvicorn worker has its own Redis pool)
kubeq worker reports                # the workers (the same module registers the tasks)

- POST /reports fans a report out into one job per month (``await task.aapply_async``) and
  answers 202 with a status URL;
- GET /reports/{id} reports progress (months done of months asked) and, once every part is
  done, the report; it reads every part's status concurrently (``await job.astatus()``);
- GET /sum waits for a job's result inside the request (``await task.adelay``, then
  ``await job.aresult``), without a thread and without polling.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, Field

import kubeq
from kubeq.store.keys import validate_job_id

queue_app = kubeq.App()  # Redis from KUBEQ_REDIS_URL


@queue_app.task(queue="reports", max_attempts=3)
def build_month(customer: str, month: int) -> dict[str, int]:
    """The slow part: pretend to aggregate one month of a customer's orders."""
    time.sleep(0.1 * (month % 3))
    return {"month": month, "orders": 7 + month}


@queue_app.task(queue="reports")
async def add(x: int, y: int) -> int:
    return x + y


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    await queue_app.aredis.ping()  # fail at start-up, not at the first request
    yield
    await queue_app.aclose()  # this worker's loop's connections


api = FastAPI(title="reports", lifespan=lifespan)


class ReportRequest(BaseModel):
    customer: str = Field(min_length=1)
    months: int = Field(ge=1, le=24)


def _parts(report_id: str, months: int) -> list[kubeq.Job]:
    return [queue_app.job(f"{report_id}.{m}", queue="reports") for m in range(1, months + 1)]


@api.post("/reports", status_code=202)
async def create_report(body: ReportRequest, response: Response) -> dict[str, str]:
    report_id = f"{uuid.uuid4().hex}-{body.months}"
    await asyncio.gather(
        *(
            build_month.aapply_async((body.customer, m), job_id=f"{report_id}.{m}")
            for m in range(1, body.months + 1)
        )
    )
    response.headers["Location"] = f"/reports/{report_id}"
    return {"report_id": report_id, "status_url": f"/reports/{report_id}"}


@api.get("/reports/{report_id}")
async def report_status(report_id: str) -> dict[str, object]:
    try:
        validate_job_id(report_id)
        months = int(report_id.rsplit("-", 1)[1])
    except (ValueError, IndexError):
        raise HTTPException(400, "not a report id") from None
    parts = _parts(report_id, months)
    statuses = await asyncio.gather(*(job.astatus() for job in parts))
    if "unknown" in statuses:
        raise HTTPException(404, "no such report (or it expired)")
    if "failed" in statuses:
        return {"status": "failed", "progress": {"done": 0, "total": months}}
    done = statuses.count("finished")
    if done < months:
        return {"status": "running", "progress": {"done": done, "total": months}}
    results = await asyncio.gather(*(job.aresult(timeout=5) for job in parts))
    return {
        "status": "finished",
        "progress": {"done": done, "total": months},
        "report": {"orders": sum(r["orders"] for r in results), "months": results},
    }


@api.get("/sum")
async def sum_now(x: int, y: int) -> dict[str, int]:
    job = await add.adelay(x, y)
    try:
        return {"sum": await job.aresult(timeout=10)}
    except kubeq.ResultTimeout:
        raise HTTPException(504, "no worker answered within 10 s") from None
