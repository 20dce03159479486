"""Tasks for a worker whose heartbeat swallows its cancellation once: the worker document's
publish, cancelled, returns as if it had finished. redis-py 8's asyncio client does that when
a command is cancelled while its connection is being made (measured: a cancelled
``await client.set()`` on a fresh connection returned normally at 9 of 40 points of the
loop); here the publish waits until it is cancelled, so the stopping worker meets it every
time. Imported as the worker's tasks module by tests/redis/test_worker_exit.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from qapp import app

from kubeq.worker import info


async def _swallowing_beat(self: info.Publisher, *args: Any) -> bool:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        return False  # cancelled, and it returns as if nothing happened
    return False


info.Publisher.beat = _swallowing_beat  # type: ignore[method-assign]


@app.task(name="swallowtasks.pause")
def pause(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
