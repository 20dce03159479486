"""Ending asyncio tasks whose cancellation may be lost.

A cancellation can be swallowed on its way through a library: redis-py's asyncio client
returns normally from a command cancelled while its connection is being made, and a
cancellation that arrives as a timeout inside ``asyncio.wait_for`` can end as that timeout.
A loop that swallowed one goes round again and never ends. ``cancel_until_done`` cancels
such tasks again until they have ended, for the worker's background loops and the
operator's TaskQueue passes alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, TypeVar

F = TypeVar("F", bound="asyncio.Future[Any]")


async def cancel_until_done(
    tasks: Iterable[F], *, recheck: float, bound: float | None = None
) -> list[F]:
    """Cancel ``tasks`` and wait for them to end, cancelling again those still running every
    ``recheck`` seconds. Gives up after ``bound`` seconds (None: never) and returns the
    tasks still running then; an empty list when every one has ended."""
    running = [task for task in tasks if not task.done()]
    give_up = None if bound is None else time.monotonic() + bound
    while running:
        for task in running:
            task.cancel()
        await asyncio.wait(running, timeout=recheck)
        running = [task for task in running if not task.done()]
        if running and give_up is not None and time.monotonic() >= give_up:
            break
    return running
