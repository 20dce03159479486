"""Start-up hold for peered replicas: a replica does not start TaskQueue passes until
``hold`` seconds after it started (``configure``, just before kopf runs), so that a peer
started at the same instant (whose peering record this replica had not seen at its first
look, when kopf resumed it) is seen and kopf pauses the lower-priority one before it acts.
Counted from the start: a standby that takes over later starts at once. Standalone (no
peering) there is no hold.

``active(logger)`` logs once per process when the first pass starts (which replica works).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import kopf

log = logging.getLogger("kubeq_operator")

_ends = 0.0
_logged = False
_announced = False


def configure(hold: float) -> None:
    """Hold the passes until ``hold`` seconds from now (0: none; standalone: not called)."""
    global _ends
    _ends = time.monotonic() + max(0.0, hold)


async def wait(stopped: kopf.DaemonStopped) -> None:
    """Until the start-up hold is over, or ``stopped`` (kopf's daemon flag: the operator
    paused for a peer or exits) is set, whichever comes first."""
    global _logged
    remaining = _ends - time.monotonic()
    if remaining > 0:
        if not _logged:
            _logged = True
            log.info(
                "peering start-up hold: first TaskQueue pass in %.1f s, once a peer started "
                "at the same time is seen",
                remaining,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), timeout=remaining)


def active() -> None:
    """Log once per process that this replica runs TaskQueue passes."""
    global _announced
    if not _announced:
        _announced = True
        log.info("first TaskQueue pass: this replica is active")
