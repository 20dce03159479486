"""Tasks the demo's worker pods run (``kubeq worker tasks``, with this folder on PYTHONPATH)."""

from __future__ import annotations

import time

import kubeq

app = kubeq.App()


@app.task(name="demo.resize")
def resize(image: int, seconds: float = 0.2) -> str:
    """Pretend to make a thumbnail."""
    time.sleep(seconds)
    return f"thumb-{image}.png"
