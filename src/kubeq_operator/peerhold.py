"""Start-up hold for peered replicas: a replica does not start TaskQueue passes until
``hold`` seconds after its first daemon started, so that a peer started at the same instant
(whose peering record this replica had not seen at its first look, when kopf resumed it) is
seen and kopf pauses the lower-priority one before it acts. Once per process: a standby
that takes over later starts at once. Standalone (no peering) there is no hold.

``active(logger)`` logs once per process when the first pass starts (which replica works).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import kopf

log = logging.getLogger("kubeq_operator")

_hold = 0.0
_ends: float | None = None
_announced = False


def configure(hold: float) -> None:
    """Hold the first passes ``hold`` seconds (0: none; standalone replicas pass 0)."""
    global _hold, _ends
    _hold, _ends = max(0.0, hold), None


async def wait(stopped: kopf.DaemonStopped) -> None:
    """Until the start-up hold is over, or ``stopped`` (kopf's daemon flag: the operator
    paused for a peer or exits) is set, whichever comes first."""
    global _ends
    if _hold <= 0:
        return
    now = time.monotonic()
    if _ends is None:
        _ends = now + _hold
        log.info("peering start-up hold: first TaskQueue pass in %.0f s (peers seen first)", _hold)
    remaining = _ends - now
    if remaining > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), timeout=remaining)


def active() -> None:
    """Log once per process that this replica runs TaskQueue passes."""
    global _announced
    if not _announced:
        _announced = True
        log.info("first TaskQueue pass: this replica is active")
