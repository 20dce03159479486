"""Handing the heap an idle worker no longer uses back to the system (glibc's
``malloc_trim``).

CPython frees what a worker allocated for its start-up (imports; compiling every module when
the image holds no compiled files leaves the most) and for a burst of jobs, but glibc's
allocator keeps the freed pages for later reuse, so an idle worker holds memory it does not
use (12 MB measured for a worker whose modules were compiled at start-up, under 1 MB after a
burst with compiled files; bench/README.md, "Where a worker's memory goes"). Once per idle
spell (the first heartbeat after start-up, then the first heartbeat with no job held after
jobs ended) the worker asks glibc to return them. The call takes a few milliseconds on a
worker's heap and changes nothing the process can observe but its memory; where the C
library has no ``malloc_trim`` (musl, macOS) it does nothing, and ``KUBEQ_MALLOC_TRIM=0`` in
the worker's environment turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable, Iterable, Mapping

ENV = "KUBEQ_MALLOC_TRIM"
"""``0`` turns the trim off."""


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (or it is turned off)."""
    if os.environ.get(ENV, "1").strip() == "0":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


class IdleTrim:
    """Trims the heap once per idle spell: ``beat`` on each heartbeat."""

    def __init__(self, trim: Callable[[int], int] | None = None) -> None:
        self._trim = trim if trim is not None else _malloc_trim()
        self._settled_at_last = -1  # jobs settled when it last trimmed; -1: never trimmed
        self.trims = 0

    def beat(self, holding: int, settled: Iterable[Mapping[str, int]]) -> bool:
        """Trim if no job is held and jobs have ended since the last trim (or none was made
        yet); whether it trimmed."""
        if self._trim is None or holding:
            return False
        total = sum(sum(per.values()) for per in settled)
        if total == self._settled_at_last:
            return False
        self._settled_at_last = total
        self._trim(0)
        self.trims += 1
        return True
