"""Tasks of the quickstart: what a worker registers with `kubeq worker tasks`."""

from __future__ import annotations

import random
import time

import kubeq

app = kubeq.App()  # Redis from KUBEQ_REDIS_URL


@app.task(max_attempts=3, backoff_min=0.2, backoff_max=1.0)
def make_thumbnail(photo_id: int, size: int) -> dict[str, int | str]:
    """Pretend to resize a photo: a little work, and now and then a transient failure of a
    first attempt (the retry succeeds: the demo's jobs all finish)."""
    time.sleep(random.uniform(0.002, 0.02))
    if kubeq.current_job().attempt == 1 and random.random() < 0.02:
        raise ConnectionError("storage hiccup (retried with backoff)")
    return {"photo": photo_id, "size": size, "path": f"thumbs/{photo_id}-{size}.jpg"}


@app.task(priority=9)
def send_email(to: str, subject: str) -> str:
    time.sleep(0.005)
    return f"sent {subject!r} to {to}"
